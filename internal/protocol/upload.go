package protocol

import "strconv"

// OutputUpload says where a job's outputs go (compute_horde_core.output_upload),
// a union discriminated by output_upload_type. Exactly one member must be set.
//
//wire:union output_upload_type OutputUploadType
type OutputUpload struct {
	ZipAndHTTPPost *ZipAndHTTPPostUpload
	ZipAndHTTPPut  *ZipAndHTTPPutUpload
	SingleFilePost *SingleFilePostUpload
	SingleFilePut  *SingleFilePutUpload
	Multi          *MultiUpload
}

// ZipAndHTTPPostUpload zips /output and POSTs it as multipart part "file" with the form fields.
//
//wire:model
type ZipAndHTTPPostUpload struct {
	_          struct{}            `wire:"output_upload_type,literal=zip_and_http_post"`
	URL        string              `wire:"url"`
	FormFields *OrderedMap[string] `wire:"form_fields,optional"`
}

// ZipAndHTTPPutUpload zips /output and PUTs the raw zip.
//
//wire:model
type ZipAndHTTPPutUpload struct {
	_   struct{} `wire:"output_upload_type,literal=zip_and_http_put"`
	URL string   `wire:"url"`
}

// SingleFilePostUpload POSTs one output file as multipart part "file".
//
//wire:model
type SingleFilePostUpload struct {
	_             struct{}            `wire:"output_upload_type,literal=single_file_post"`
	URL           string              `wire:"url"`
	FormFields    *OrderedMap[string] `wire:"form_fields,optional"`
	RelativePath  string              `wire:"relative_path"`
	SignedHeaders *OrderedMap[string] `wire:"signed_headers,optional"`
}

// SingleFilePutUpload PUTs one output file.
//
//wire:model
type SingleFilePutUpload struct {
	_             struct{}            `wire:"output_upload_type,literal=single_file_put"`
	URL           string              `wire:"url"`
	RelativePath  string              `wire:"relative_path"`
	SignedHeaders *OrderedMap[string] `wire:"signed_headers,optional"`
}

// MultiUpload uploads single files concurrently, and optionally everything else
// zipped to SystemOutput.
//
//wire:model
type MultiUpload struct {
	_            struct{}       `wire:"output_upload_type,literal=multi_upload"`
	Uploads      []OutputUpload `wire:"uploads,via=SingleUploads"`               // each a SingleFilePost or SingleFilePut
	SystemOutput *OutputUpload  `wire:"system_output,optional,via=SystemOutput"` // nil, or a ZipAndHTTPPost or ZipAndHTTPPut
}

// uploadKinds restricts the members accepted in a position of the union.
type uploadKinds uint8

const (
	uploadZip uploadKinds = 1 << iota
	uploadSingle
	uploadMulti
	uploadAny = uploadZip | uploadSingle | uploadMulti
)

func (k uploadKinds) allows(t OutputUploadType) bool {
	switch t {
	case OutputUploadTypeZipAndHTTPPost, OutputUploadTypeZipAndHTTPPut:
		return k&uploadZip != 0
	case OutputUploadTypeSingleFilePost, OutputUploadTypeSingleFilePut:
		return k&uploadSingle != 0
	case OutputUploadTypeMultiUpload:
		return k&uploadMulti != 0
	}
	return false
}

func (k uploadKinds) expected() string {
	switch k {
	case uploadZip:
		return "zip_and_http_post or zip_and_http_put"
	case uploadSingle:
		return "single_file_post or single_file_put"
	}
	return "an output upload type"
}

func (u *OutputUpload) decode(r *reader) error { return u.decodeIn(r, uploadAny) }

func (u *OutputUpload) decodeIn(r *reader, kinds uploadKinds) error {
	t, err := readTag(r, "output_upload_type", &outputUploadTypeEnum)
	if err != nil {
		return err
	}
	if !kinds.allows(t) {
		return &DecodeError{Field: "output_upload_type", Msg: strconv.Quote(string(t)) + " not allowed here (expected " +
			kinds.expected() + ")", Err: ErrUnknownEnumValue}
	}
	return u.decodeMember(r, t)
}

func (u OutputUpload) encode(e *encoder) { u.encodeIn(e, uploadAny) }

func (u OutputUpload) encodeIn(e *encoder, kinds uploadKinds) {
	t := u.Type()
	if t == "" {
		e.fail("output_upload", "exactly one OutputUpload member must be set", ErrInvalidValue)
		e.null()
		return
	}
	if !kinds.allows(t) {
		e.fail("output_upload", string(t)+" not allowed here (expected "+kinds.expected()+")", ErrInvalidValue)
	}
	u.encodeMember(e)
}

// decodeSingleUploads reads a multi_upload's uploads, each a single-file upload.
func decodeSingleUploads(r *reader, dst *[]OutputUpload) error {
	list := []OutputUpload{}
	err := r.array(func(int) error {
		var sub OutputUpload
		err := sub.decodeIn(r, uploadSingle)
		list = append(list, sub)
		return err
	})
	if err != nil {
		return err
	}
	*dst = list
	return nil
}

func encodeSingleUploads(e *encoder, list []OutputUpload) {
	e.byte1('[')
	for i, sub := range list {
		if i > 0 {
			e.byte1(',')
		}
		sub.encodeIn(e, uploadSingle)
	}
	e.byte1(']')
}

// decodeSystemOutput reads a multi_upload's system_output: null or a zip upload.
func decodeSystemOutput(r *reader, dst **OutputUpload) error {
	if r.tryNull() {
		*dst = nil
		return nil
	}
	sub := new(OutputUpload)
	if err := sub.decodeIn(r, uploadZip); err != nil {
		return err
	}
	*dst = sub
	return nil
}

func encodeSystemOutput(e *encoder, u *OutputUpload) {
	if u == nil {
		e.null()
		return
	}
	u.encodeIn(e, uploadZip)
}
