-- Validators stored a job's spec as JSON of their own Go struct (validator.JobSpec: "UUID",
-- "DockerImage", …); they now store upstream's V2JobRequest JSON, as miners store upstream's
-- messages. Rows of the old shape are rewritten field for field; the V2JobRequest fields the
-- old shape did not have get the values the validator used for them (no namespace, no GPU
-- flag, no trusted miner, no streaming).

UPDATE jobs SET spec = json_object(
    'signature', NULL,
    'type', 'job.new',
    'message_type', 'V2JobRequest',
    'uuid', spec ->> '$.UUID',
    'job_namespace', NULL,
    'executor_class', spec ->> '$.ExecutorClass',
    'docker_image', spec ->> '$.DockerImage',
    'args', json(coalesce(nullif(spec -> '$.Args', 'null'), '[]')),
    'env', json(spec -> '$.Env'),
    'use_gpu', json('false'),
    'volume', json(spec -> '$.Volume'),
    'output_upload', json(spec -> '$.OutputUpload'),
    'artifacts_dir', json(spec -> '$.ArtifactsDir'),
    'on_trusted_miner', json('false'),
    'download_time_limit', spec ->> '$.DownloadTimeLimit',
    'execution_time_limit', spec ->> '$.ExecutionTimeLimit',
    'upload_time_limit', spec ->> '$.UploadTimeLimit',
    'streaming_start_time_limit', 0,
    'streaming_details', NULL
)
WHERE role = 'validator' AND json_type(spec, '$.DockerImage') IS NOT NULL;
