rule merge:
    """Assemble a frame's shards into one grid file with its axes and provenance."""
    input:
        unpack(centre_file),
        shards=shard_files,
    output:
        GRID,
    log:
        "logs/{experiment}/frame{frame}/merge.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=frame_mem_mb,
        runtime=frame_runtime,
    params:
        training=training_params,
        window=frame_window_spec,
        shard_size=shard_size,
        results_version=trainability.RESULTS_VERSION,
    script:
        "../scripts/merge.py"
