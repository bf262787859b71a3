package protocol

import "strconv"

// Volume is a job input (compute_horde_core.volume.Volume), a union discriminated
// by volume_type. Exactly one member must be set. A MultiVolume may not contain
// another MultiVolume.
type Volume struct {
	Inline      *InlineVolume
	ZipURL      *ZipURLVolume
	SingleFile  *SingleFileVolume
	Huggingface *HuggingfaceVolume
	Multi       *MultiVolume
}

// InlineVolume is a base64-encoded zip unpacked into /volume/<relative_path>.
type InlineVolume struct {
	Contents     string  // base64 of a zip archive
	RelativePath *string // optional
}

// ZipURLVolume is a zip downloaded from Contents (sic: upstream names the URL
// field "contents") and unpacked into /volume/<relative_path>.
type ZipURLVolume struct {
	Contents     string // the URL
	RelativePath *string
}

// SingleFileVolume is one file downloaded from URL to /volume/<relative_path>.
type SingleFileVolume struct {
	URL          string
	RelativePath string
}

// HuggingfaceVolume is a Hugging Face snapshot download.
type HuggingfaceVolume struct {
	RepoID        string
	RepoType      *string // "model" (or nil), "dataset", "space"
	Revision      *string
	RelativePath  *string
	AllowPatterns *AllowPatterns
	Token         *string // nil: the executor uses its own HF_ACCESS_TOKEN
}

// AllowPatterns is huggingface allow_patterns, typed str | list[str] upstream.
// Single records that the wire form was one string (then Patterns has one item).
type AllowPatterns struct {
	Patterns []string
	Single   bool
}

// MultiVolume processes several volumes, in order, into the same root.
type MultiVolume struct {
	Volumes []Volume // none of them a MultiVolume
}

// Type returns the set member's volume_type, or "" if none or several are set.
func (v Volume) Type() VolumeType {
	t, n := VolumeType(""), 0
	if v.Inline != nil {
		t, n = VolumeTypeInline, n+1
	}
	if v.ZipURL != nil {
		t, n = VolumeTypeZipURL, n+1
	}
	if v.SingleFile != nil {
		t, n = VolumeTypeSingleFile, n+1
	}
	if v.Huggingface != nil {
		t, n = VolumeTypeHuggingfaceVolume, n+1
	}
	if v.Multi != nil {
		t, n = VolumeTypeMultiVolume, n+1
	}
	if n != 1 {
		return ""
	}
	return t
}

// Flatten returns the volumes a job processes: the members of a MultiVolume, or
// the volume itself.
func (v Volume) Flatten() []Volume {
	if v.Multi != nil {
		return v.Multi.Volumes
	}
	return []Volume{v}
}

func (v *Volume) decode(r *reader) error { return v.decodeIn(r, true) }

func (v *Volume) decodeIn(r *reader, allowMulti bool) error {
	if r.peek() != '{' {
		return r.typeErr("object")
	}
	tag, ok, err := r.peekDiscriminator("volume_type")
	if err != nil {
		return err
	}
	if !ok {
		return &DecodeError{Field: "volume_type", Msg: "missing discriminator", Err: ErrMissingField}
	}
	vt, err := volumeTypeEnum.parse(tag)
	if err != nil {
		return inField(err, "volume_type")
	}
	*v = Volume{}
	switch vt {
	case VolumeTypeInline:
		v.Inline = new(InlineVolume)
		return v.Inline.decode(r)
	case VolumeTypeZipURL:
		v.ZipURL = new(ZipURLVolume)
		return v.ZipURL.decode(r)
	case VolumeTypeSingleFile:
		v.SingleFile = new(SingleFileVolume)
		return v.SingleFile.decode(r)
	case VolumeTypeHuggingfaceVolume:
		v.Huggingface = new(HuggingfaceVolume)
		return v.Huggingface.decode(r)
	default: // multi_volume
		if !allowMulti {
			return &DecodeError{Field: "volume_type", Msg: "multi_volume cannot be nested " +
				"(expected inline, zip_url, single_file or huggingface_volume)", Err: ErrUnknownEnumValue}
		}
		v.Multi = new(MultiVolume)
		return v.Multi.decode(r)
	}
}

func (v Volume) encode(e *encoder) { v.encodeIn(e, true) }

func (v Volume) encodeIn(e *encoder, allowMulti bool) {
	switch v.Type() {
	case VolumeTypeInline:
		v.Inline.encode(e)
	case VolumeTypeZipURL:
		v.ZipURL.encode(e)
	case VolumeTypeSingleFile:
		v.SingleFile.encode(e)
	case VolumeTypeHuggingfaceVolume:
		v.Huggingface.encode(e)
	case VolumeTypeMultiVolume:
		if !allowMulti {
			e.fail("volume", "multi_volume cannot be nested", ErrInvalidValue)
		}
		v.Multi.encode(e)
	default:
		e.fail("volume", "exactly one Volume member must be set", ErrInvalidValue)
		e.null()
	}
}

func encodeOptVolume(e *encoder, v *Volume) {
	if v == nil {
		e.null()
		return
	}
	v.encode(e)
}

var inlineVolumeFields = []string{"volume_type", "contents", "relative_path"}

func (v *InlineVolume) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "volume_type":
			return fLiteral(r, &seen, 0, "volume_type", string(VolumeTypeInline))
		case "contents":
			return fStr(r, &seen, 1, "contents", &v.Contents)
		case "relative_path":
			return fOptStr(r, &seen, 2, "relative_path", &v.RelativePath)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, inlineVolumeFields)
}

func (v InlineVolume) encode(e *encoder) {
	e.raw(`{"volume_type":"inline","contents":`)
	e.str(v.Contents)
	e.raw(`,"relative_path":`)
	e.optStr(v.RelativePath)
	e.byte1('}')
}

var zipURLVolumeFields = []string{"volume_type", "contents", "relative_path"}

func (v *ZipURLVolume) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "volume_type":
			return fLiteral(r, &seen, 0, "volume_type", string(VolumeTypeZipURL))
		case "contents":
			return fStr(r, &seen, 1, "contents", &v.Contents)
		case "relative_path":
			return fOptStr(r, &seen, 2, "relative_path", &v.RelativePath)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, zipURLVolumeFields)
}

func (v ZipURLVolume) encode(e *encoder) {
	e.raw(`{"volume_type":"zip_url","contents":`)
	e.str(v.Contents)
	e.raw(`,"relative_path":`)
	e.optStr(v.RelativePath)
	e.byte1('}')
}

var singleFileVolumeFields = []string{"volume_type", "url", "relative_path"}

func (v *SingleFileVolume) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "volume_type":
			return fLiteral(r, &seen, 0, "volume_type", string(VolumeTypeSingleFile))
		case "url":
			return fStr(r, &seen, 1, "url", &v.URL)
		case "relative_path":
			return fStr(r, &seen, 2, "relative_path", &v.RelativePath)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1|1<<2, singleFileVolumeFields)
}

func (v SingleFileVolume) encode(e *encoder) {
	e.raw(`{"volume_type":"single_file","url":`)
	e.str(v.URL)
	e.raw(`,"relative_path":`)
	e.str(v.RelativePath)
	e.byte1('}')
}

var huggingfaceVolumeFields = []string{"volume_type", "repo_id", "repo_type", "revision",
	"relative_path", "allow_patterns", "token"}

func (v *HuggingfaceVolume) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "volume_type":
			return fLiteral(r, &seen, 0, "volume_type", string(VolumeTypeHuggingfaceVolume))
		case "repo_id":
			return fStr(r, &seen, 1, "repo_id", &v.RepoID)
		case "repo_type":
			return fOptStr(r, &seen, 2, "repo_type", &v.RepoType)
		case "revision":
			return fOptStr(r, &seen, 3, "revision", &v.Revision)
		case "relative_path":
			return fOptStr(r, &seen, 4, "relative_path", &v.RelativePath)
		case "allow_patterns":
			if err := mark(&seen, 5, "allow_patterns"); err != nil {
				return err
			}
			if err := v.decodeAllowPatterns(r); err != nil {
				return inField(err, "allow_patterns")
			}
			return nil
		case "token":
			return fOptStr(r, &seen, 6, "token", &v.Token)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, huggingfaceVolumeFields)
}

func (v *HuggingfaceVolume) decodeAllowPatterns(r *reader) error {
	switch r.peek() {
	case 'n':
		if !r.tryNull() {
			return r.typeErr("string or array of strings")
		}
		v.AllowPatterns = nil
		return nil
	case '"':
		s, err := r.readString()
		if err != nil {
			return err
		}
		v.AllowPatterns = &AllowPatterns{Patterns: []string{s}, Single: true}
		return nil
	case '[':
		list := []string{}
		err := r.array(func(int) error {
			s, err := r.readString()
			list = append(list, s)
			return err
		})
		if err != nil {
			return err
		}
		v.AllowPatterns = &AllowPatterns{Patterns: list}
		return nil
	}
	return r.typeErr("string or array of strings")
}

func (v HuggingfaceVolume) encode(e *encoder) {
	e.raw(`{"volume_type":"huggingface_volume","repo_id":`)
	e.str(v.RepoID)
	e.raw(`,"repo_type":`)
	e.optStr(v.RepoType)
	e.raw(`,"revision":`)
	e.optStr(v.Revision)
	e.raw(`,"relative_path":`)
	e.optStr(v.RelativePath)
	e.raw(`,"allow_patterns":`)
	switch ap := v.AllowPatterns; {
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
	e.raw(`,"token":`)
	e.optStr(v.Token)
	e.byte1('}')
}

var multiVolumeFields = []string{"volume_type", "volumes"}

func (v *MultiVolume) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "volume_type":
			return fLiteral(r, &seen, 0, "volume_type", string(VolumeTypeMultiVolume))
		case "volumes":
			if err := mark(&seen, 1, "volumes"); err != nil {
				return err
			}
			vols := []Volume{}
			err := r.array(func(int) error {
				var sub Volume
				err := sub.decodeIn(r, false)
				vols = append(vols, sub)
				return err
			})
			if err != nil {
				return inField(err, "volumes")
			}
			v.Volumes = vols
			return nil
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, multiVolumeFields)
}

func (v MultiVolume) encode(e *encoder) {
	e.raw(`{"volume_type":"multi_volume","volumes":[`)
	for i, sub := range v.Volumes {
		if i > 0 {
			e.byte1(',')
		}
		sub.encodeIn(e, false)
	}
	e.raw(`]}`)
}
