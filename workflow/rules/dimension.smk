rule dimension:
    """Box-counting dimension of the trainability boundary over all frames."""
    input:
        score_files,
    output:
        DIMENSION,
    log:
        "logs/{experiment}/dimension.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        measure="convergence",
    script:
        "../scripts/dimension.py"
