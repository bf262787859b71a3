package protocol

// OutputUpload says where a job's outputs go (compute_horde_core.output_upload),
// a union discriminated by output_upload_type. Exactly one member must be set.
type OutputUpload struct {
	ZipAndHTTPPost *ZipAndHTTPPostUpload
	ZipAndHTTPPut  *ZipAndHTTPPutUpload
	SingleFilePost *SingleFilePostUpload
	SingleFilePut  *SingleFilePutUpload
	Multi          *MultiUpload
}

// ZipAndHTTPPostUpload zips /output and POSTs it as multipart part "file" with the form fields.
type ZipAndHTTPPostUpload struct {
	URL        string
	FormFields *OrderedMap[string]
}

// ZipAndHTTPPutUpload zips /output and PUTs the raw zip.
type ZipAndHTTPPutUpload struct {
	URL string
}

// SingleFilePostUpload POSTs one output file as multipart part "file".
type SingleFilePostUpload struct {
	URL           string
	FormFields    *OrderedMap[string]
	RelativePath  string
	SignedHeaders *OrderedMap[string]
}

// SingleFilePutUpload PUTs one output file.
type SingleFilePutUpload struct {
	URL           string
	RelativePath  string
	SignedHeaders *OrderedMap[string]
}

// MultiUpload uploads single files concurrently, and optionally everything else
// zipped to SystemOutput.
type MultiUpload struct {
	Uploads      []OutputUpload // each a SingleFilePost or SingleFilePut
	SystemOutput *OutputUpload  // nil, or a ZipAndHTTPPost or ZipAndHTTPPut
}

// Type returns the set member's output_upload_type, or "" if none or several are set.
func (u OutputUpload) Type() OutputUploadType {
	t, n := OutputUploadType(""), 0
	if u.ZipAndHTTPPost != nil {
		t, n = OutputUploadTypeZipAndHTTPPost, n+1
	}
	if u.ZipAndHTTPPut != nil {
		t, n = OutputUploadTypeZipAndHTTPPut, n+1
	}
	if u.SingleFilePost != nil {
		t, n = OutputUploadTypeSingleFilePost, n+1
	}
	if u.SingleFilePut != nil {
		t, n = OutputUploadTypeSingleFilePut, n+1
	}
	if u.Multi != nil {
		t, n = OutputUploadTypeMultiUpload, n+1
	}
	if n != 1 {
		return ""
	}
	return t
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
	if r.peek() != '{' {
		return r.typeErr("object")
	}
	tag, ok, err := r.peekDiscriminator("output_upload_type")
	if err != nil {
		return err
	}
	if !ok {
		return &DecodeError{Field: "output_upload_type", Msg: "missing discriminator", Err: ErrMissingField}
	}
	t, err := outputUploadTypeEnum.parse(tag)
	if err != nil {
		return inField(err, "output_upload_type")
	}
	if !kinds.allows(t) {
		return &DecodeError{Field: "output_upload_type", Msg: "\"" + tag + "\" not allowed here (expected " +
			kinds.expected() + ")", Err: ErrUnknownEnumValue}
	}
	*u = OutputUpload{}
	switch t {
	case OutputUploadTypeZipAndHTTPPost:
		u.ZipAndHTTPPost = new(ZipAndHTTPPostUpload)
		return u.ZipAndHTTPPost.decode(r)
	case OutputUploadTypeZipAndHTTPPut:
		u.ZipAndHTTPPut = new(ZipAndHTTPPutUpload)
		return u.ZipAndHTTPPut.decode(r)
	case OutputUploadTypeSingleFilePost:
		u.SingleFilePost = new(SingleFilePostUpload)
		return u.SingleFilePost.decode(r)
	case OutputUploadTypeSingleFilePut:
		u.SingleFilePut = new(SingleFilePutUpload)
		return u.SingleFilePut.decode(r)
	default:
		u.Multi = new(MultiUpload)
		return u.Multi.decode(r)
	}
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
	switch t {
	case OutputUploadTypeZipAndHTTPPost:
		u.ZipAndHTTPPost.encode(e)
	case OutputUploadTypeZipAndHTTPPut:
		u.ZipAndHTTPPut.encode(e)
	case OutputUploadTypeSingleFilePost:
		u.SingleFilePost.encode(e)
	case OutputUploadTypeSingleFilePut:
		u.SingleFilePut.encode(e)
	default:
		u.Multi.encode(e)
	}
}

func encodeOptUpload(e *encoder, u *OutputUpload) {
	if u == nil {
		e.null()
		return
	}
	u.encode(e)
}

var zipPostFields = []string{"output_upload_type", "url", "form_fields"}

func (u *ZipAndHTTPPostUpload) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "output_upload_type":
			return fLiteral(r, &seen, 0, "output_upload_type", string(OutputUploadTypeZipAndHTTPPost))
		case "url":
			return fStr(r, &seen, 1, "url", &u.URL)
		case "form_fields":
			return fOptStrMap(r, &seen, 2, "form_fields", &u.FormFields)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, zipPostFields)
}

func (u ZipAndHTTPPostUpload) encode(e *encoder) {
	e.raw(`{"output_upload_type":"zip_and_http_post","url":`)
	e.str(u.URL)
	e.raw(`,"form_fields":`)
	encodeOptMap(e, u.FormFields, encStringValue)
	e.byte1('}')
}

var zipPutFields = []string{"output_upload_type", "url"}

func (u *ZipAndHTTPPutUpload) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "output_upload_type":
			return fLiteral(r, &seen, 0, "output_upload_type", string(OutputUploadTypeZipAndHTTPPut))
		case "url":
			return fStr(r, &seen, 1, "url", &u.URL)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, zipPutFields)
}

func (u ZipAndHTTPPutUpload) encode(e *encoder) {
	e.raw(`{"output_upload_type":"zip_and_http_put","url":`)
	e.str(u.URL)
	e.byte1('}')
}

var singlePostFields = []string{"output_upload_type", "url", "form_fields", "relative_path", "signed_headers"}

func (u *SingleFilePostUpload) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "output_upload_type":
			return fLiteral(r, &seen, 0, "output_upload_type", string(OutputUploadTypeSingleFilePost))
		case "url":
			return fStr(r, &seen, 1, "url", &u.URL)
		case "form_fields":
			return fOptStrMap(r, &seen, 2, "form_fields", &u.FormFields)
		case "relative_path":
			return fStr(r, &seen, 3, "relative_path", &u.RelativePath)
		case "signed_headers":
			return fOptStrMap(r, &seen, 4, "signed_headers", &u.SignedHeaders)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1|1<<3, singlePostFields)
}

func (u SingleFilePostUpload) encode(e *encoder) {
	e.raw(`{"output_upload_type":"single_file_post","url":`)
	e.str(u.URL)
	e.raw(`,"form_fields":`)
	encodeOptMap(e, u.FormFields, encStringValue)
	e.raw(`,"relative_path":`)
	e.str(u.RelativePath)
	e.raw(`,"signed_headers":`)
	encodeOptMap(e, u.SignedHeaders, encStringValue)
	e.byte1('}')
}

var singlePutFields = []string{"output_upload_type", "url", "relative_path", "signed_headers"}

func (u *SingleFilePutUpload) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "output_upload_type":
			return fLiteral(r, &seen, 0, "output_upload_type", string(OutputUploadTypeSingleFilePut))
		case "url":
			return fStr(r, &seen, 1, "url", &u.URL)
		case "relative_path":
			return fStr(r, &seen, 2, "relative_path", &u.RelativePath)
		case "signed_headers":
			return fOptStrMap(r, &seen, 3, "signed_headers", &u.SignedHeaders)
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1|1<<2, singlePutFields)
}

func (u SingleFilePutUpload) encode(e *encoder) {
	e.raw(`{"output_upload_type":"single_file_put","url":`)
	e.str(u.URL)
	e.raw(`,"relative_path":`)
	e.str(u.RelativePath)
	e.raw(`,"signed_headers":`)
	encodeOptMap(e, u.SignedHeaders, encStringValue)
	e.byte1('}')
}

var multiUploadFields = []string{"output_upload_type", "uploads", "system_output"}

func (u *MultiUpload) decode(r *reader) error {
	var seen uint64
	err := r.object(func(k []byte) error {
		switch string(k) {
		case "output_upload_type":
			return fLiteral(r, &seen, 0, "output_upload_type", string(OutputUploadTypeMultiUpload))
		case "uploads":
			if err := mark(&seen, 1, "uploads"); err != nil {
				return err
			}
			list := []OutputUpload{}
			err := r.array(func(int) error {
				var sub OutputUpload
				err := sub.decodeIn(r, uploadSingle)
				list = append(list, sub)
				return err
			})
			if err != nil {
				return inField(err, "uploads")
			}
			u.Uploads = list
			return nil
		case "system_output":
			if err := mark(&seen, 2, "system_output"); err != nil {
				return err
			}
			if r.tryNull() {
				u.SystemOutput = nil
				return nil
			}
			sub := new(OutputUpload)
			if err := sub.decodeIn(r, uploadZip); err != nil {
				return inField(err, "system_output")
			}
			u.SystemOutput = sub
			return nil
		}
		return r.skipValue()
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, 1<<1, multiUploadFields)
}

func (u MultiUpload) encode(e *encoder) {
	e.raw(`{"output_upload_type":"multi_upload","uploads":[`)
	for i, sub := range u.Uploads {
		if i > 0 {
			e.byte1(',')
		}
		sub.encodeIn(e, uploadSingle)
	}
	e.raw(`],"system_output":`)
	if u.SystemOutput == nil {
		e.null()
	} else {
		u.SystemOutput.encodeIn(e, uploadZip)
	}
	e.byte1('}')
}
