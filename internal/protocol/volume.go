package protocol

import "strconv"

// Volume is a job input (compute_horde_core.volume.Volume), a union discriminated
// by volume_type. Exactly one member must be set. A MultiVolume may not contain
// another MultiVolume.
//
//wire:union volume_type VolumeType
type Volume struct {
	Inline      *InlineVolume
	ZipURL      *ZipURLVolume
	SingleFile  *SingleFileVolume
	Huggingface *HuggingfaceVolume
	Multi       *MultiVolume
}

// InlineVolume is a base64-encoded zip unpacked into /volume/<relative_path>.
//
//wire:model
type InlineVolume struct {
	_            struct{} `wire:"volume_type,literal=inline"`
	Contents     string   `wire:"contents"` // base64 of a zip archive
	RelativePath *string  `wire:"relative_path,optional"`
}

// ZipURLVolume is a zip downloaded from Contents (sic: upstream names the URL
// field "contents") and unpacked into /volume/<relative_path>.
//
//wire:model
type ZipURLVolume struct {
	_            struct{} `wire:"volume_type,literal=zip_url"`
	Contents     string   `wire:"contents"` // the URL
	RelativePath *string  `wire:"relative_path,optional"`
}

// SingleFileVolume is one file downloaded from URL to /volume/<relative_path>.
//
//wire:model
type SingleFileVolume struct {
	_            struct{} `wire:"volume_type,literal=single_file"`
	URL          string   `wire:"url"`
	RelativePath string   `wire:"relative_path"`
}

// HuggingfaceVolume is a Hugging Face snapshot download.
//
//wire:model
type HuggingfaceVolume struct {
	_             struct{}       `wire:"volume_type,literal=huggingface_volume"`
	RepoID        string         `wire:"repo_id"`
	RepoType      *string        `wire:"repo_type,optional"` // "model" (or nil), "dataset", "space"
	Revision      *string        `wire:"revision,optional"`
	RelativePath  *string        `wire:"relative_path,optional"`
	AllowPatterns *AllowPatterns `wire:"allow_patterns,optional,via=AllowPatterns"`
	Token         *string        `wire:"token,optional"` // nil: the executor uses its own HF_ACCESS_TOKEN
}

// AllowPatterns is huggingface allow_patterns, typed str | list[str] upstream.
// Single records that the wire form was one string (then Patterns has one item).
type AllowPatterns struct {
	Patterns []string
	Single   bool
}

// MultiVolume processes several volumes, in order, into the same root.
//
//wire:model
type MultiVolume struct {
	_       struct{} `wire:"volume_type,literal=multi_volume"`
	Volumes []Volume `wire:"volumes,via=NestedVolumes"` // none of them a MultiVolume
}

// Flatten returns the volumes a job processes: the members of a MultiVolume, or
// the volume itself.
func (v Volume) Flatten() []Volume {
	if v.Multi != nil {
		return v.Multi.Volumes
	}
	return []Volume{v}
}

// notMulti refuses a multi_volume inside another (and in the signed fields' flat list).
func notMulti(t VolumeType) string {
	if t == VolumeTypeMultiVolume {
		return "multi_volume cannot be nested (expected inline, zip_url, single_file or huggingface_volume)"
	}
	return ""
}

func decodeAllowPatterns(r *reader, dst **AllowPatterns) error {
	switch r.peek() {
	case 'n':
		if !r.tryNull() {
			return r.typeErr("string or array of strings")
		}
		*dst = nil
		return nil
	case '"':
		s, err := r.readString()
		if err != nil {
			return err
		}
		*dst = &AllowPatterns{Patterns: []string{s}, Single: true}
		return nil
	case '[':
		list, err := readStrList(r)
		if err != nil {
			return err
		}
		*dst = &AllowPatterns{Patterns: list}
		return nil
	}
	return r.typeErr("string or array of strings")
}

func encodeAllowPatterns(e *encoder, ap *AllowPatterns) {
	switch {
	case ap == nil:
		e.null()
	case ap.Single:
		if len(ap.Patterns) != 1 {
			e.fail("allow_patterns", "Single requires exactly one pattern, got "+
				strconv.Itoa(len(ap.Patterns)), ErrInvalidValue)
		}
		if len(ap.Patterns) > 0 {
			e.str(ap.Patterns[0])
		} else {
			e.str("")
		}
	default:
		e.strList(ap.Patterns)
	}
}

// decodeNestedVolumes reads a multi_volume's members, none of which may be a multi_volume.
func decodeNestedVolumes(r *reader, dst *[]Volume) error {
	return decodeMembers(r, dst, (*Volume).decodeAllowed, notMulti)
}

func encodeNestedVolumes(e *encoder, vols []Volume) {
	encodeMembers(e, vols, Volume.encodeAllowed, "volume", notMulti)
}
