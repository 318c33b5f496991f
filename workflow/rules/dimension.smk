rule dimension:
    """Box-counting dimension of the trainability boundary over all frames, per frame and
    for the sequence. A sequence frame whose central region holds no boundary stops it."""
    input:
        score_files,
    output:
        DIMENSION,
    log:
        "logs/{experiment}/dimension.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=sequence_mem_mb,
        runtime=sequence_runtime,
    params:
        measure=label_measure,
        sequence=sequence_params,
    script:
        "../scripts/dimension.py"
