-- Validators stored a job's spec as JSON of their own Go struct (validator.JobSpec: "UUID",
-- "DockerImage", …); they now store upstream's V2JobRequest JSON, as miners store upstream's
-- messages. Rows of the old shape are rewritten field for field; the V2JobRequest fields the
-- old shape did not have get the values the validator used for them (no namespace, no GPU
-- flag, no trusted miner, no streaming). json, not jsonb, keeps env in its order.

UPDATE jobs SET spec = json_build_object(
    'signature', NULL,
    'type', 'job.new',
    'message_type', 'V2JobRequest',
    'uuid', spec::json ->> 'UUID',
    'job_namespace', NULL,
    'executor_class', spec::json ->> 'ExecutorClass',
    'docker_image', spec::json ->> 'DockerImage',
    'args', CASE WHEN json_typeof(spec::json -> 'Args') = 'array' THEN spec::json -> 'Args' ELSE '[]'::json END,
    'env', spec::json -> 'Env',
    'use_gpu', false,
    'volume', spec::json -> 'Volume',
    'output_upload', spec::json -> 'OutputUpload',
    'artifacts_dir', spec::json -> 'ArtifactsDir',
    'on_trusted_miner', false,
    'download_time_limit', (spec::json ->> 'DownloadTimeLimit')::bigint,
    'execution_time_limit', (spec::json ->> 'ExecutionTimeLimit')::bigint,
    'upload_time_limit', (spec::json ->> 'UploadTimeLimit')::bigint,
    'streaming_start_time_limit', 0,
    'streaming_details', NULL
)::text
WHERE role = 'validator' AND spec::json -> 'DockerImage' IS NOT NULL;
