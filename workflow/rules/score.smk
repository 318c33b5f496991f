rule score:
    """Convergence measures of every pixel: the paper's and log10 final/initial loss."""
    input:
        "results/{experiment}/frame{frame}/grid.h5",
    output:
        "results/{experiment}/frame{frame}/scores.h5",
    log:
        "logs/{experiment}/frame{frame}/score.log",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/score.py"
