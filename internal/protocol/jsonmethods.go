package protocol

// MarshalJSON and UnmarshalJSON make every model usable with encoding/json (the
// methods below are uniform; add a pair for every new model). Note that
// json.Marshal HTML-escapes '<', '>' and '&' in the result; use Encode for
// upstream's exact bytes.

// MarshalJSON returns the pydantic-compatible encoding.
func (m GenericError) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *GenericError) UnmarshalJSON(data []byte) error {
	var v GenericError
	if err := unmarshalModel(data, "GenericError", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ValidatorAuthForMiner) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ValidatorAuthForMiner) UnmarshalJSON(data []byte) error {
	var v ValidatorAuthForMiner
	if err := unmarshalModel(data, "ValidatorAuthForMiner", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m UnauthorizedError) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *UnauthorizedError) UnmarshalJSON(data []byte) error {
	var v UnauthorizedError
	if err := unmarshalModel(data, "UnauthorizedError", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0ExecutorManifestRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0ExecutorManifestRequest) UnmarshalJSON(data []byte) error {
	var v V0ExecutorManifestRequest
	if err := unmarshalModel(data, "V0ExecutorManifestRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0MainHotkeyMessage) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0MainHotkeyMessage) UnmarshalJSON(data []byte) error {
	var v V0MainHotkeyMessage
	if err := unmarshalModel(data, "V0MainHotkeyMessage", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0InitialJobRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0InitialJobRequest) UnmarshalJSON(data []byte) error {
	var v V0InitialJobRequest
	if err := unmarshalModel(data, "V0InitialJobRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0DeclineJobRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0DeclineJobRequest) UnmarshalJSON(data []byte) error {
	var v V0DeclineJobRequest
	if err := unmarshalModel(data, "V0DeclineJobRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0AcceptJobRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0AcceptJobRequest) UnmarshalJSON(data []byte) error {
	var v V0AcceptJobRequest
	if err := unmarshalModel(data, "V0AcceptJobRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobRequest) UnmarshalJSON(data []byte) error {
	var v V0JobRequest
	if err := unmarshalModel(data, "V0JobRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobAcceptedReceiptRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobAcceptedReceiptRequest) UnmarshalJSON(data []byte) error {
	var v V0JobAcceptedReceiptRequest
	if err := unmarshalModel(data, "V0JobAcceptedReceiptRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobFinishedReceiptRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobFinishedReceiptRequest) UnmarshalJSON(data []byte) error {
	var v V0JobFinishedReceiptRequest
	if err := unmarshalModel(data, "V0JobFinishedReceiptRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0ExecutorFailedRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0ExecutorFailedRequest) UnmarshalJSON(data []byte) error {
	var v V0ExecutorFailedRequest
	if err := unmarshalModel(data, "V0ExecutorFailedRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0StreamingJobNotReadyRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0StreamingJobNotReadyRequest) UnmarshalJSON(data []byte) error {
	var v V0StreamingJobNotReadyRequest
	if err := unmarshalModel(data, "V0StreamingJobNotReadyRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0ExecutorReadyRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0ExecutorReadyRequest) UnmarshalJSON(data []byte) error {
	var v V0ExecutorReadyRequest
	if err := unmarshalModel(data, "V0ExecutorReadyRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0StreamingJobReadyRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0StreamingJobReadyRequest) UnmarshalJSON(data []byte) error {
	var v V0StreamingJobReadyRequest
	if err := unmarshalModel(data, "V0StreamingJobReadyRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0VolumesReadyRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0VolumesReadyRequest) UnmarshalJSON(data []byte) error {
	var v V0VolumesReadyRequest
	if err := unmarshalModel(data, "V0VolumesReadyRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0ExecutionDoneRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0ExecutionDoneRequest) UnmarshalJSON(data []byte) error {
	var v V0ExecutionDoneRequest
	if err := unmarshalModel(data, "V0ExecutionDoneRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobFailedRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobFailedRequest) UnmarshalJSON(data []byte) error {
	var v V0JobFailedRequest
	if err := unmarshalModel(data, "V0JobFailedRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobFinishedRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobFinishedRequest) UnmarshalJSON(data []byte) error {
	var v V0JobFinishedRequest
	if err := unmarshalModel(data, "V0JobFinishedRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0MachineSpecsRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0MachineSpecsRequest) UnmarshalJSON(data []byte) error {
	var v V0MachineSpecsRequest
	if err := unmarshalModel(data, "V0MachineSpecsRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0HordeFailedRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0HordeFailedRequest) UnmarshalJSON(data []byte) error {
	var v V0HordeFailedRequest
	if err := unmarshalModel(data, "V0HordeFailedRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0Heartbeat) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0Heartbeat) UnmarshalJSON(data []byte) error {
	var v V0Heartbeat
	if err := unmarshalModel(data, "V0Heartbeat", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0AuthenticationRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0AuthenticationRequest) UnmarshalJSON(data []byte) error {
	var v V0AuthenticationRequest
	if err := unmarshalModel(data, "V0AuthenticationRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobStatusUpdate) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobStatusUpdate) UnmarshalJSON(data []byte) error {
	var v V0JobStatusUpdate
	if err := unmarshalModel(data, "V0JobStatusUpdate", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0MachineSpecsUpdate) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0MachineSpecsUpdate) UnmarshalJSON(data []byte) error {
	var v V0MachineSpecsUpdate
	if err := unmarshalModel(data, "V0MachineSpecsUpdate", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V2JobRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V2JobRequest) UnmarshalJSON(data []byte) error {
	var v V2JobRequest
	if err := unmarshalModel(data, "V2JobRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0JobCheated) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0JobCheated) UnmarshalJSON(data []byte) error {
	var v V0JobCheated
	if err := unmarshalModel(data, "V0JobCheated", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0WorkIntervalReceiptRequest) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0WorkIntervalReceiptRequest) UnmarshalJSON(data []byte) error {
	var v V0WorkIntervalReceiptRequest
	if err := unmarshalModel(data, "V0WorkIntervalReceiptRequest", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m V0ClassValuesMessage) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *V0ClassValuesMessage) UnmarshalJSON(data []byte) error {
	var v V0ClassValuesMessage
	if err := unmarshalModel(data, "V0ClassValuesMessage", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m Receipt) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *Receipt) UnmarshalJSON(data []byte) error {
	var v Receipt
	if err := unmarshalModel(data, "Receipt", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m Response) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *Response) UnmarshalJSON(data []byte) error {
	var v Response
	if err := unmarshalModel(data, "Response", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ResponseError) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ResponseError) UnmarshalJSON(data []byte) error {
	var v ResponseError
	if err := unmarshalModel(data, "ResponseError", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m Signature) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *Signature) UnmarshalJSON(data []byte) error {
	var v Signature
	if err := unmarshalModel(data, "Signature", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m StreamingDetails) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *StreamingDetails) UnmarshalJSON(data []byte) error {
	var v StreamingDetails
	if err := unmarshalModel(data, "StreamingDetails", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ExecutorTiming) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ExecutorTiming) UnmarshalJSON(data []byte) error {
	var v ExecutorTiming
	if err := unmarshalModel(data, "ExecutorTiming", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m MachineSpecs) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *MachineSpecs) UnmarshalJSON(data []byte) error {
	var v MachineSpecs
	if err := unmarshalModel(data, "MachineSpecs", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobStatusMetadata) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobStatusMetadata) UnmarshalJSON(data []byte) error {
	var v JobStatusMetadata
	if err := unmarshalModel(data, "JobStatusMetadata", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobResultDetails) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobResultDetails) UnmarshalJSON(data []byte) error {
	var v JobResultDetails
	if err := unmarshalModel(data, "JobResultDetails", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobRejectionDetails) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobRejectionDetails) UnmarshalJSON(data []byte) error {
	var v JobRejectionDetails
	if err := unmarshalModel(data, "JobRejectionDetails", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobFailureDetails) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobFailureDetails) UnmarshalJSON(data []byte) error {
	var v JobFailureDetails
	if err := unmarshalModel(data, "JobFailureDetails", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m HordeFailureDetails) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *HordeFailureDetails) UnmarshalJSON(data []byte) error {
	var v HordeFailureDetails
	if err := unmarshalModel(data, "HordeFailureDetails", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m StreamingServerDetails) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *StreamingServerDetails) UnmarshalJSON(data []byte) error {
	var v StreamingServerDetails
	if err := unmarshalModel(data, "StreamingServerDetails", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ClassValue) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ClassValue) UnmarshalJSON(data []byte) error {
	var v ClassValue
	if err := unmarshalModel(data, "ClassValue", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobStartedReceiptPayload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobStartedReceiptPayload) UnmarshalJSON(data []byte) error {
	var v JobStartedReceiptPayload
	if err := unmarshalModel(data, "JobStartedReceiptPayload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobAcceptedReceiptPayload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobAcceptedReceiptPayload) UnmarshalJSON(data []byte) error {
	var v JobAcceptedReceiptPayload
	if err := unmarshalModel(data, "JobAcceptedReceiptPayload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m JobFinishedReceiptPayload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *JobFinishedReceiptPayload) UnmarshalJSON(data []byte) error {
	var v JobFinishedReceiptPayload
	if err := unmarshalModel(data, "JobFinishedReceiptPayload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m WorkIntervalReceiptPayload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *WorkIntervalReceiptPayload) UnmarshalJSON(data []byte) error {
	var v WorkIntervalReceiptPayload
	if err := unmarshalModel(data, "WorkIntervalReceiptPayload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m Volume) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *Volume) UnmarshalJSON(data []byte) error {
	var v Volume
	if err := unmarshalModel(data, "Volume", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m InlineVolume) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *InlineVolume) UnmarshalJSON(data []byte) error {
	var v InlineVolume
	if err := unmarshalModel(data, "InlineVolume", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ZipURLVolume) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ZipURLVolume) UnmarshalJSON(data []byte) error {
	var v ZipURLVolume
	if err := unmarshalModel(data, "ZipURLVolume", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m SingleFileVolume) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *SingleFileVolume) UnmarshalJSON(data []byte) error {
	var v SingleFileVolume
	if err := unmarshalModel(data, "SingleFileVolume", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m HuggingfaceVolume) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *HuggingfaceVolume) UnmarshalJSON(data []byte) error {
	var v HuggingfaceVolume
	if err := unmarshalModel(data, "HuggingfaceVolume", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m MultiVolume) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *MultiVolume) UnmarshalJSON(data []byte) error {
	var v MultiVolume
	if err := unmarshalModel(data, "MultiVolume", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m OutputUpload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *OutputUpload) UnmarshalJSON(data []byte) error {
	var v OutputUpload
	if err := unmarshalModel(data, "OutputUpload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ZipAndHTTPPostUpload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ZipAndHTTPPostUpload) UnmarshalJSON(data []byte) error {
	var v ZipAndHTTPPostUpload
	if err := unmarshalModel(data, "ZipAndHTTPPostUpload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m ZipAndHTTPPutUpload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *ZipAndHTTPPutUpload) UnmarshalJSON(data []byte) error {
	var v ZipAndHTTPPutUpload
	if err := unmarshalModel(data, "ZipAndHTTPPutUpload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m SingleFilePostUpload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *SingleFilePostUpload) UnmarshalJSON(data []byte) error {
	var v SingleFilePostUpload
	if err := unmarshalModel(data, "SingleFilePostUpload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m SingleFilePutUpload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *SingleFilePutUpload) UnmarshalJSON(data []byte) error {
	var v SingleFilePutUpload
	if err := unmarshalModel(data, "SingleFilePutUpload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON returns the pydantic-compatible encoding.
func (m MultiUpload) MarshalJSON() ([]byte, error) { return marshalModel(m) }

// UnmarshalJSON decodes strictly (see the package documentation).
func (m *MultiUpload) UnmarshalJSON(data []byte) error {
	var v MultiUpload
	if err := unmarshalModel(data, "MultiUpload", &v); err != nil {
		return err
	}
	*m = v
	return nil
}
