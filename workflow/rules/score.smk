rule score:
    """Convergence measures of every pixel: the paper's and log10 final/initial loss."""
    input:
        GRID,
    output:
        SCORES,
    log:
        "logs/{experiment}/frame{frame}/score.log",
    conda:
        "../../envs/trainability.yaml"
    resources:
        mem_mb=frame_mem_mb,
        runtime=frame_runtime,
    params:
        label=label_measure,
    script:
        "../scripts/score.py"
