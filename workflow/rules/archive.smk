rule archive:
    """Pack one experiment's results and logs, a provenance record and the Snakemake
    report into a .tar.gz with a SHA-256 manifest. Not part of `all`; ask for it:
    snakemake archives/<experiment>.tar.gz. Check it with:
    trainability verify-archive archives/<experiment>.tar.gz

    No inputs on purpose: archiving packs the results as they are and never makes
    Snakemake recompute (or delete) any of them, e.g. after a code change. It
    fails with the list of what is missing when the experiment is unfinished.
    To re-pack after new results: --forcerun archive (or delete the archive)."""
    output:
        "archives/{experiment}.tar.gz",
    log:
        # Not under logs/{experiment}/: that directory is being archived.
        "logs/archives/{experiment}.log",
    localrule: True
    conda:
        "../../envs/trainability.yaml"
    params:
        expected=lambda wc: finished_outputs(archived(wc)),
        directories=lambda wc: expand(EXPERIMENT_DIRS, experiment=archived(wc)),
        grids=lambda wc: experiment_grids(archived(wc)),
        shards=lambda wc: experiment_shards(archived(wc)),
        resolved=lambda wc: tconfig.as_builtin(tarchive.experiment_of(wc.experiment, EXPERIMENTS)),
        snakefile=workflow.main_snakefile,
        # The files given, then the `base` files they build on.
        configfiles=[str(f) for f in workflow.configfiles] + BASE_FILES,
    script:
        "../scripts/archive.py"
