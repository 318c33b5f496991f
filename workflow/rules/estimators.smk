rule uncertainty:
    """The uncertainty-exponent dimension of the experiment's window (Grebogi et al. 1983):
    random points, each trained with a partner epsilon away for every epsilon the dtype
    resolves; D = 2 - alpha with a bootstrap interval. Only for experiments with an
    `uncertainty:` section."""
    input:
        unpack(input_files),
    output:
        UNCERTAINTY,
    log:
        "logs/{experiment}/uncertainty.log",
    conda:
        "../../envs/trainability.yaml"
    threads: 2
    resources:
        gpu=gpus,
        mem_mb=train_mem_mb,
        runtime=uncertainty_runtime,
    params:
        training=training_params,
        window=estimator_window,
        spec=uncertainty_params,
        kernel=config.get("kernel", "auto"),
        results_version=trainability.RESULTS_VERSION,
    script:
        "../scripts/uncertainty.py"


rule line_dimension:
    """Liu's (2024) one-dimensional estimator along a line of the window: 2^K + 1 points in
    x at the line's y; dimension = slope of log2(label changes) against the level k.
    Only for experiments with a `line:` section."""
    input:
        unpack(input_files),
    output:
        LINE,
    log:
        "logs/{experiment}/line_dimension.log",
    conda:
        "../../envs/trainability.yaml"
    threads: 2
    resources:
        gpu=gpus,
        mem_mb=train_mem_mb,
        runtime=line_runtime,
    params:
        training=training_params,
        spec=line_params,
        kernel=config.get("kernel", "auto"),
        results_version=trainability.RESULTS_VERSION,
    script:
        "../scripts/line_dimension.py"


rule estimator_figures:
    """The diagnostic figure of the uncertainty exponent (log f against log epsilon) or of
    the line (log2 label changes against k), from its result: a title changes only this."""
    input:
        "results/{experiment}/{estimator}.json",
    output:
        pdf="results/{experiment}/figures/{estimator}.pdf",
        png=report(
            "results/{experiment}/figures/{estimator}.png",
            caption="../report/estimators.rst",
            category="Estimators",
            labels={"experiment": "{experiment}", "figure": "{estimator}"},
        ),
    log:
        "logs/{experiment}/{estimator}_figure.log",
    wildcard_constraints:
        estimator="uncertainty|line_dimension",
    conda:
        "../../envs/trainability.yaml"
    params:
        title=lambda wc: experiment(wc)["title"],
    script:
        "../scripts/estimator_figures.py"
