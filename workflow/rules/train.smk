rule train_shard:
    """Train every pixel of one shard in one batched run (kernels: trainability.kernels; GPU when present)."""
    input:
        unpack(frame_inputs),
    output:
        # Temporary unless the config keeps them: grid.h5 holds the same data (keep_shards).
        SHARD if tconfig.keep_shards(config) else temp(SHARD),
    log:
        "logs/{experiment}/frame{frame}/shards/shard{shard}.log",
    benchmark:
        "logs/{experiment}/frame{frame}/shards/shard{shard}.benchmark.tsv"
    conda:
        "../../envs/trainability.yaml"
    threads: 2
    resources:
        gpu=gpus,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    params:
        training=training_params,
        window=frame_window_spec,
        shard_size=shard_size,
        kernel=config.get("kernel", "auto"),
        results_version=trainability.RESULTS_VERSION,
        # Its frame's finished grid, whose pixels are copied when they are exactly this job's.
        grid=lambda wc: GRID.format(experiment=wc.experiment, frame=wc.frame),
    script:
        "../scripts/train_shard.py"
