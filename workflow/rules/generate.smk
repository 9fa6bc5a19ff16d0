"""Prompt embeddings, method configurations and one generation per (video, method)."""


localrules:
    method_config,
    methods_table,


rule method_config:
    """Everything that decides one method's generations (baseline included): sampler and
    adaptation settings, the --method-json of its generation jobs.

    Its inputs are the model checkpoints: new checkpoints (or changed settings) rewrite this
    file and so rerun the method's generations, which then need no checkpoint inputs of
    their own (two inputs fewer on each of the study's tens of thousands of generation jobs).
    """
    input:
        mmdit=CKPT.mmdit,
        vae=CKPT.vae,
    output:
        METHOD_CONFIG,
    log:
        log_path("method_config", "{method}"),
    benchmark:
        benchmark_path("method_config", "{method}")
    params:
        settings=lambda wildcards: json.dumps(method_settings(wildcards.method)),
    shell:
        "sora-tta method-file {output} --settings {params.settings:q} > {log} 2>&1"


rule methods_table:
    """Every method of the study: id, readable name, changed and full parameters."""
    output:
        METHODS_TABLE,
    log:
        log_path("methods_table"),
    benchmark:
        benchmark_path("methods_table")
    params:
        rows=lambda wildcards: json.dumps(methods.methods_rows(VARIANTS, FINAL_METHODS)),
    shell:
        "sora-tta methods-table {output} --rows {params.rows:q} > {log} 2>&1"


# A checkpoint: the generation jobs wait for it through their input function, and after it
# ran they are re-evaluated with their own prompt file as input. Existing prompt files are
# kept (only new prompts are encoded), so a changed manifest reruns no generation unless a
# video's prompt changed (a new file name: the name is a hash of the prompt text). The
# negative prompt's file is rewritten by every run of the checkpoint with the same content,
# hence ancient() in the generation rules.
checkpoint encode_prompts:
    """T5 + CLIP embedding of every distinct prompt, once (existing files are kept)."""
    input:
        manifest=MANIFEST,
        t5=CKPT.t5,
        clip=CKPT.clip,
    output:
        negative=NEGATIVE,
    log:
        log_path("encode_prompts"),
    benchmark:
        benchmark_path("encode_prompts")
    params:
        ckpt=lambda wildcards, input: input.t5[: -len(layout.T5_DIR) - 1],
        out_dir=lambda wildcards, output: os.path.dirname(output.negative),
        fps=config["prompts"]["fps"],
        motion=config["prompts"]["motion_score"],
        device=config["generation"]["device"],
        dtype=config["generation"]["dtype"],
    shell:
        "sora-tta encode-prompts --manifest {input.manifest} --checkpoint-dir {params.ckpt:q}"
        " --out-dir {params.out_dir} --fps {params.fps} --motion-score {params.motion}"
        " --device {params.device} --dtype {params.dtype} > {log} 2>&1"


# The declared output is meta.json, the record of the video's outcome: "ok" (video.mkv, and
# loss.csv for TTA, written before it) or "failed" for a deterministic failure (divergence,
# non-finite samples), which is final: the job exits 0, and evaluation goes ahead without
# that video. The preflight removes an "ok" record whose video is missing, so the plain
# command rebuilds it. Transient failures (preemption, out of memory) exit non-zero: retried.
rule generate_baseline:
    """Continuation without adaptation."""
    input:
        clip=CLIP,
        prompt=prompt_embedding,
        negative=ancient(NEGATIVE),
        method=METHOD_CONFIG.replace("{method}", BASELINE),
    output:
        meta=GEN_META.replace("{method}", BASELINE),
    log:
        log_path("generate_baseline", "{video}"),
    benchmark:
        benchmark_path("generate_baseline", "{video}")
    params:
        options=options.generate_options(config),
        donor="",  # generate_tta: the cross-video control's donor flags
    shell:
        "sora-tta generate --clip {input.clip} --video-id {wildcards.video}"
        " --method-json {input.method} --prompt-embedding {input.prompt}"
        " --negative-embedding {input.negative} --out-dir $(dirname {output.meta})"
        " {params.options} {params.donor} 2>&1 | tee {log} >&2"


# Both generation rules copy their progress lines (adaptation steps, sampling, decoding) into
# the rule log and onto the job's standard error (the SLURM log): `tee`; Snakemake's shell
# runs with pipefail, so a failure still fails the job.
#
# The variant's folder name carries the hash of its parameters. An interrupted run (exit 75,
# or a killed job rerun with --rerun-incomplete) resumes from the state under
# <out-dir>/resume/, which Snakemake does not delete.
#
# generate_tta: continuation after LoRA test-time adaptation on the conditioning frames (for
# the cross-video control: on the donor video's), the baseline's command on a variant's files.
use rule generate_baseline as generate_tta with:
    input:
        unpack(cross_video_inputs),
        clip=CLIP,
        prompt=prompt_embedding,
        negative=ancient(NEGATIVE),
        method=METHOD_CONFIG.replace("{method}", "{variant}"),
    output:
        meta=GEN_META.replace("{method}", "{variant}"),
    log:
        log_path("generate_tta", "{variant}/{video}"),
    benchmark:
        benchmark_path("generate_tta", "{variant}/{video}")
    params:
        options=options.generate_options(config, tta=True),
        donor=cross_video_options,
