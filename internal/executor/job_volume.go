package executor

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/computehorde/horde/internal/protocol"
)

// unpackVolume fills the workspace's volume directory from v. Inline volumes (alone or inside
// a multi_volume) are supported; other types fail the job with download_failed until the
// download code lands.
func (d *driver) unpackVolume(v *protocol.Volume) (int64, error) {
	budget := d.cfg.MaxVolumeBytes
	if v.Type() == protocol.VolumeTypeMultiVolume {
		var total int64
		for _, sub := range v.Multi.Volumes {
			n, err := d.unpackOne(&sub, budget, total)
			total += n
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	return d.unpackOne(v, budget, 0)
}

func (d *driver) unpackOne(v *protocol.Volume, budget, used int64) (int64, error) {
	switch v.Type() {
	case protocol.VolumeTypeInline:
		data, err := decodeBase64(v.Inline.Contents)
		if err != nil {
			return 0, jobFailed(protocol.JobFailureReasonDownloadFailed, "Download failed: inline volume is not valid base64: %v", err)
		}
		dest, err := joinRel(d.ws.VolumeDir, derefString(v.Inline.RelativePath))
		if err != nil {
			return 0, jobFailed(protocol.JobFailureReasonDownloadFailed, "Download failed: %v", err)
		}
		limit := int64(-1)
		if budget > 0 {
			limit = budget - used
			if limit <= 0 {
				return 0, jobFailed(protocol.JobFailureReasonDownloadFailed, "Input volume too large")
			}
		}
		n, err := ExtractZip(data, dest, limit)
		if err != nil {
			if errors.Is(err, ErrVolumeTooLarge) {
				return n, jobFailed(protocol.JobFailureReasonDownloadFailed, "Input volume too large: %v", err)
			}
			return n, jobFailed(protocol.JobFailureReasonDownloadFailed, "Download failed: %v", err)
		}
		return n, nil
	case "":
		return 0, jobFailed(protocol.JobFailureReasonDownloadFailed, "Download failed: malformed volume")
	default:
		return 0, jobFailed(protocol.JobFailureReasonDownloadFailed, "volume type %s not supported yet", v.Type())
	}
}

// decodeBase64 accepts standard base64 with or without padding and ignores whitespace.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, " \t\r\n") {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, s)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}
