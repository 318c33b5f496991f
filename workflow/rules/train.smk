rule train_shard:
    """Train every pixel of one shard in one batched torch run (GPU when present)."""
    input:
        unpack(input_files),
    output:
        "results/{experiment}/frame{frame}/shards/shard{shard}.h5",
    log:
        "logs/{experiment}/frame{frame}/shards/shard{shard}.log",
    benchmark:
        "logs/{experiment}/frame{frame}/shards/shard{shard}.benchmark.tsv"
    params:
        training=training_params,
        window=frame_window,
        shard_size=shard_size,
        kernel=config.get("kernel", "auto"),
        results_version=trainability.RESULTS_VERSION,
    threads: 2
    resources:
        gpu=1,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/train_shard.py"
