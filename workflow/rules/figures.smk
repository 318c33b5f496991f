rule figures:
    """Per experiment: the landscape panel and the box-counting diagnostic."""
    input:
        scores="results/{experiment}/frame0/scores.h5",
        dimension="results/{experiment}/dimension.json",
    output:
        landscape_pdf="results/{experiment}/figures/landscape.pdf",
        landscape_png=report(
            "results/{experiment}/figures/landscape.png",
            caption="../report/landscape.rst",
            category="Landscapes",
            labels={"experiment": "{experiment}", "figure": "landscape"},
        ),
        boxcount_pdf="results/{experiment}/figures/boxcount.pdf",
        boxcount_png=report(
            "results/{experiment}/figures/boxcount.png",
            caption="../report/boxcount.rst",
            category="Box counting",
            labels={"experiment": "{experiment}", "figure": "box counting"},
        ),
    log:
        "logs/{experiment}/figures.log",
    params:
        panel=experiment_panel,
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/figures.py"


rule six_panel:
    """All summary experiments in the layout of the paper's Figure 1."""
    input:
        scores=expand("results/{experiment}/frame0/scores.h5", experiment=SUMMARY),
        dimensions=expand("results/{experiment}/dimension.json", experiment=SUMMARY),
    output:
        pdf="results/summary/six_panel.pdf",
        png=report(
            "results/summary/six_panel.png",
            caption="../report/six_panel.rst",
            category="Summary",
            labels={"figure": "six panels"},
        ),
    log:
        "logs/summary/six_panel.log",
    params:
        panels=[panel_params(name) for name in SUMMARY],
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/six_panel.py"


rule dimension_table:
    """Our fractal dimensions beside the paper's."""
    input:
        dimensions=expand("results/{experiment}/dimension.json", experiment=SUMMARY),
    output:
        csv="results/summary/dimension_table.csv",
        md=report(
            "results/summary/dimension_table.md",
            caption="../report/dimension_table.rst",
            category="Summary",
            labels={"figure": "dimension table"},
        ),
    log:
        "logs/summary/dimension_table.log",
    params:
        panels=[panel_params(name) for name in SUMMARY],
    conda:
        "../../envs/trainability.yaml"
    script:
        "../scripts/dimension_table.py"
