rule merge:
    """Assemble a frame's shards into one grid file with its axes and provenance."""
    input:
        shard_files,
    output:
        "results/{experiment}/frame{frame}/grid.h5",
    log:
        "logs/{experiment}/frame{frame}/merge.log",
    params:
        training=training_params,
        window=frame_window,
        shard_size=shard_size,
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/merge.py"
