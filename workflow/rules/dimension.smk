rule dimension:
    """Box-counting dimension of the trainability boundary over all frames."""
    input:
        score_files,
    output:
        "results/{experiment}/dimension.json",
    log:
        "logs/{experiment}/dimension.log",
    params:
        measure="convergence",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/dimension.py"
