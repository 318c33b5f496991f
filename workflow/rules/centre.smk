rule find_centre:
    """The automatic centre of a zoom sequence (zoom.centre: auto): descend with pilot
    frames to the deepest frame the dtype resolves, then pin a boundary point by
    bisection (trainability/boundary/centre.py). Every frame's window is computed from it."""
    input:
        unpack(input_files),
    output:
        CENTRE,
    log:
        "logs/{experiment}/find_centre.log",
    conda:
        "../../envs/trainability.yaml"
    threads: 2
    resources:
        gpu=gpus,
        mem_mb=2000,
        runtime=60,
    params:
        made_with=lambda wc: centre_made_with(wc.experiment),
        history=lambda wc: CENTRE_HISTORY.format(experiment=wc.experiment),
    script:
        "../scripts/find_centre.py"
