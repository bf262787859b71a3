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
)

// check says why t is not allowed here; "" when it is. A multi_upload is allowed only where
// no restriction applies (the top level), so no kind names it.
func (k uploadKinds) check(t OutputUploadType) string {
	var ok bool
	switch t {
	case OutputUploadTypeZipAndHTTPPost, OutputUploadTypeZipAndHTTPPut:
		ok = k&uploadZip != 0
	case OutputUploadTypeSingleFilePost, OutputUploadTypeSingleFilePut:
		ok = k&uploadSingle != 0
	}
	if ok {
		return ""
	}
	expected := "an output upload type"
	switch k {
	case uploadZip:
		expected = "zip_and_http_post or zip_and_http_put"
	case uploadSingle:
		expected = "single_file_post or single_file_put"
	}
	return strconv.Quote(string(t)) + " not allowed here (expected " + expected + ")"
}

// decodeSingleUploads reads a multi_upload's uploads, each a single-file upload.
// singleOnly is uploadSingle.check as a plain function: a method value passed down to
// decodeMembers would be allocated on every decode.
func singleOnly(t OutputUploadType) string { return uploadSingle.check(t) }

func decodeSingleUploads(r *reader, dst *[]OutputUpload) error {
	return decodeMembers(r, dst, (*OutputUpload).decodeAllowed, singleOnly)
}

func encodeSingleUploads(e *encoder, list []OutputUpload) {
	encodeMembers(e, list, OutputUpload.encodeAllowed, "output_upload", singleOnly)
}

// decodeSystemOutput reads a multi_upload's system_output: null or a zip upload.
func decodeSystemOutput(r *reader, dst **OutputUpload) error {
	if r.tryNull() {
		*dst = nil
		return nil
	}
	sub := new(OutputUpload)
	if err := sub.decodeAllowed(r, uploadZip.check); err != nil {
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
	u.encodeAllowed(e, "output_upload", uploadZip.check)
}
