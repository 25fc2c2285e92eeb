"""The ``edgekit`` command line: export, generate, chat, cache, info, verify, deploy, profile, summarize."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from edgekit.errors import EdgekitError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Qwen3.5 small models as int4 bundles, run on device without torch.")


def _fail(err: EdgekitError) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


@app.command()
def export(
    model: str = typer.Argument(..., help="Hub id (Qwen/Qwen3.5-0.8B), checkpoint folder, or built-in: "
                                          "tiny-random, random-0.8b, random-2b (random weights)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle folder to write."),
    format: Optional[str] = typer.Option(None, "--format",
                                         help="onnx or executorch (.pte, XNNPACK). Default: executorch for "
                                              "--target android, else onnx."),
    quant: Optional[str] = typer.Option(None, "--quant", help="onnx: int4 (default) or fp32; executorch: 8da4w "
                                                             "(default) or fp32. fp32 is for parity checks."),
    block_size: int = typer.Option(32, "--block-size", help="int4 block (group) size: 32, 64 or 128."),
    target: str = typer.Option("cpu", "--target", help="cpu, rpi or android: sets context/chunk defaults."),
    max_context: Optional[int] = typer.Option(None, "--max-context", help="Context budget (tokens)."),
    contrib_ops: bool = typer.Option(True, "--contrib-ops/--standard-ops",
                                     help="DeltaNet via onnxruntime contrib ops, or standard ONNX only (slower)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle folder."),
    vision: bool = typer.Option(True, "--vision/--no-vision", help="Include the vision tower (vision.onnx, or "
                                "the .pte's vision_encoder method) when the checkpoint has one."),
    vision_quant: Optional[str] = typer.Option(None, "--vision-quant", help="onnx: vision tower weights int8 "
                                               "(default), int4 or fp32 (default with --quant fp32)."),
    vision_size: Optional[int] = typer.Option(None, "--vision-size", help="executorch: the vision_encoder's frame "
                                              "size S (S x S, a multiple of 32: (S/32)^2 tokens per frame pair; "
                                              "default 224)."),
) -> None:
    """Export a Qwen3.5 checkpoint to a bundle folder."""
    format = format or ("executorch" if target == "android" else "onnx")
    try:
        if format == "onnx":
            from edgekit.export.onnx_export import export_onnx

            if vision_size is not None:
                raise EdgekitError("--vision-size is for --format executorch (an ONNX tower takes any frame size)",
                                   "leave it out, or pass --format executorch")

            quant = quant or "int4"
            bundle = export_onnx(model, out, quant=quant, block_size=block_size, target=target,
                                 contrib_ops=contrib_ops, max_context=max_context, overwrite=overwrite,
                                 vision=vision, vision_quant=vision_quant)
        elif format == "executorch":
            if vision_quant is not None:
                raise EdgekitError("--vision-quant is for --format onnx (a .pte tower is 8da8w, or fp32 with "
                                   "--quant fp32)", "leave it out, or pass --format onnx")
            quant = quant or "8da4w"
            bundle = _export_executorch()(model, out, quant=quant, block_size=block_size, target=target,
                                          max_context=max_context, overwrite=overwrite, vision=vision,
                                          vision_size=vision_size or 224)
        else:
            raise EdgekitError(f"unknown format {format!r}", "use --format onnx or --format executorch")
    except EdgekitError as err:
        _fail(err)
    total = sum(f["bytes"] for f in bundle.manifest["files"].values())
    typer.echo(f"wrote {out} ({total / 2**20:.1f} MiB, {format}, {quant}, target {target})")


def _export_executorch():
    try:
        from edgekit.export.executorch_export import export_executorch
    except ImportError as err:
        raise EdgekitError(f"--format executorch needs {err.name}, which is not installed",
                           "pip install 'edgekit[export,executorch]'") from None
    return export_executorch


def _load(bundle: Path, threads: Optional[int], max_context: Optional[int]):
    import edgekit

    return edgekit.load(bundle, threads=threads, max_context=max_context)


def _sampling(temperature, top_k, top_p, repetition_penalty, seed):
    from edgekit.sampling import SamplingParams

    return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty, seed=seed)


_T = typer.Option(0.0, "--temperature", help="0 = greedy.")
_K = typer.Option(0, "--top-k", help="0 = off.")
_P = typer.Option(1.0, "--top-p")
_R = typer.Option(1.0, "--repetition-penalty")
_S = typer.Option(None, "--seed")
_THREADS = typer.Option(None, "--threads", help="onnxruntime intra-op threads (default: cores, at most 4).")
_CTX = typer.Option(None, "--max-context", help="Override the bundle's context budget.")
_THINK = typer.Option(False, "--think/--no-think", help="Let the model think first (off by default).")


@app.command()
def generate(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    prompt: str = typer.Option(..., "-p", "--prompt"),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    raw: bool = typer.Option(False, "--raw", help="Feed the prompt as is, without the chat template."),
    think: bool = _THINK, temperature: float = _T, top_k: int = _K, top_p: float = _P,
    repetition_penalty: float = _R, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Prompt cache file (from `edgekit cache "
                                              "save`): a prompt that starts with a cached prefix skips it."),
) -> None:
    """Generate a reply to one prompt, streaming tokens to stdout and speed to stderr."""
    from edgekit.tokenizer import render_chat

    try:
        sampling = _sampling(temperature, top_k, top_p, repetition_penalty, seed)
        model = _load(bundle, threads, max_context)
        cache = _open_cache(model, cache_file)
        text = prompt if raw else render_chat([{"role": "user", "content": prompt}], enable_thinking=think)
        _stream_reply(model, cache, model.tokenizer.encode(text), sampling, max_new_tokens)
    except EdgekitError as err:
        _fail(err)


def _open_cache(model, cache_file: Optional[Path]):
    """The prompt cache: loaded from ``cache_file`` when it exists, else a new in-memory one."""
    from edgekit.runtimes import PromptCache

    if cache_file is not None and cache_file.exists():
        return PromptCache.load(model, cache_file)
    return PromptCache(model)


def _stream_reply(model, cache, prompt_ids, sampling, max_new_tokens, marks=()):
    """Prefill through the cache, stream the reply to stdout and the speed to stderr; return the state."""
    start = time.perf_counter()
    reused = cache.hits
    state, logits = cache.prefill(prompt_ids, marks)
    reused = cache.hits - reused
    _stream(model, state, logits, sampling, max_new_tokens, start,
            f"{len(prompt_ids)} prompt tokens, {reused} reused from the prompt cache")
    return state


def _stream(model, state, logits, sampling, max_new_tokens, start: float, prompt_note: str) -> None:
    """Decode from ``logits``, streaming text to stdout; then the prompt note, TTFT and speed to stderr."""
    stream = model.tokenizer.stream(skip_special=True)
    first = None
    count = 0
    for token in model.decode(state, logits, sampling, max_new_tokens):
        if first is None:
            first = time.perf_counter()
        count += 1
        sys.stdout.write(stream.push(token))
        sys.stdout.flush()
    sys.stdout.write(stream.flush() + "\n")
    end = time.perf_counter()
    ttft = (first or end) - start
    decode = f", decode {(count - 1) / (end - first):.1f} tok/s" if first and count > 1 else ""
    typer.echo(f"[{prompt_note}, TTFT {ttft * 1000:.0f} ms{decode}, context {state.length}/{state.max_context}]",
               err=True)


@app.command()
def describe(
    bundle: Path = typer.Argument(..., help="Bundle folder (exported with its vision tower)."),
    images: list[Path] = typer.Argument(..., help="One or more image files (JPEG, PNG, WebP, BMP)."),
    prompt: str = typer.Option("Describe this image.", "-p", "--prompt"),
    max_new_tokens: int = typer.Option(128, "-n", "--max-new-tokens"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Resize each image to at most this many "
                                             "pixels (e.g. 200704 = 448x448: 196 tokens); default: the bundle's."),
    think: bool = _THINK, temperature: float = _T, top_k: int = _K, top_p: float = _P,
    repetition_penalty: float = _R, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
) -> None:
    """Answer a prompt about images, streaming tokens to stdout and timings to stderr."""
    from edgekit.bundle import Bundle
    from edgekit.runtimes.vision import load_image
    from edgekit.runtimes.vision_preprocess import smart_resize
    from edgekit.tokenizer import render_chat

    try:
        sampling = _sampling(temperature, top_k, top_p, repetition_penalty, seed)
        manifest = Bundle.open(bundle).manifest  # cheap checks first: the models load only for valid input
        if "vision" not in manifest["graphs"]:
            raise EdgekitError(f"bundle {bundle} has no vision graph",
                               "re-export it from a checkpoint with a vision tower (without --no-vision)")
        spec = manifest["graphs"]["vision"]
        budget = dict(spec["image"])
        fixed = spec.get("tokens_per_pair")  # a .pte's tower takes one frame size, fixed at export
        if max_pixels is not None:
            if fixed:
                raise EdgekitError(f"--max-pixels does not apply: this .pte encodes images at "
                                   f"{spec['frame_size'][0]}x{spec['frame_size'][1]}, fixed at export",
                                   "leave out --max-pixels, or re-export with another --vision-size")
            if max_pixels < 32 * 32:
                raise EdgekitError(f"--max-pixels {max_pixels} is below one 32x32 patch", "pass at least 1024")
            budget = {"min_pixels": min(budget["min_pixels"], max_pixels), "max_pixels": max_pixels}
        pixels = [load_image(path) for path in images]
        needed = sum((fixed or h * w // 1024) + 2
                     for h, w in (smart_resize(p.shape[0], p.shape[1], **budget) for p in pixels))
        context = max_context or manifest["runtime"]["max_context"]
        if needed > context:
            raise EdgekitError(f"the image{'s' if len(images) > 1 else ''} need {needed} tokens but the context "
                               f"budget is {context}",
                               "pass --max-pixels (e.g. 200704 for 448x448) or a larger --max-context")
        model = _load(bundle, threads, max_context)
        encoder = model.vision
        start = time.perf_counter()
        parts: list = ["<|im_start|>user\n"]
        for image in pixels:
            parts.append(encoder.encode_image(image, **budget))
        encoded = time.perf_counter()
        parts.append(render_chat([{"role": "user", "content": prompt}], enable_thinking=think)
                     .removeprefix("<|im_start|>user\n"))
        state = model.new_state()
        logits = model.prefill_multimodal(state, parts)
        vision_tokens = sum(p.embeds.shape[0] for p in parts[1:-1])
        _stream(model, state, logits, sampling, max_new_tokens, start,
                f"{len(images)} image{'s' if len(images) > 1 else ''} ({vision_tokens} vision tokens, encoded in "
                f"{(encoded - start) * 1000:.0f} ms), {state.length - vision_tokens} text tokens")
    except EdgekitError as err:
        _fail(err)


@app.command()
def chat(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    max_new_tokens: int = typer.Option(256, "-n", "--max-new-tokens"),
    think: bool = _THINK, temperature: float = _T, top_k: int = _K, top_p: float = _P,
    repetition_penalty: float = _R, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
    cache_file: Optional[Path] = typer.Option(None, "--cache", help="Keep the prompt cache in this file "
                                              "(loaded at start, saved after every turn)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest conversation in --cache."),
) -> None:
    """Chat in the terminal. Each turn resumes from a checkpoint taken after the previous reply, so
    earlier turns are never recomputed; with --cache that survives a restart."""
    from edgekit.tokenizer import render_chat

    try:
        sampling = _sampling(temperature, top_k, top_p, repetition_penalty, seed)
        model = _load(bundle, threads, max_context)
        cache = _open_cache(model, cache_file)
        if resume and cache_file is None:
            raise EdgekitError("--resume needs --cache FILE", "pass the cache file of the conversation to resume")
        latest = cache.latest("turn") if resume else None
        if resume and latest is None:
            raise EdgekitError(f"{cache_file} holds no conversation to resume", "start one without --resume")
        history = list(latest.tokens) if latest else []
        # A resumed conversation ends with a reply whose <|im_end|> was sampled but not folded in.
        pending = "<|im_end|>\n" if latest else ""
        if system and not latest:
            pending = render_chat([{"role": "system", "content": system}], add_generation_prompt=False)
        typer.echo("edgekit chat: empty line or Ctrl-D to quit", err=True)
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            if not line.strip():
                break
            opening = history + model.tokenizer.encode(pending)  # a system prompt marks a checkpoint of its own
            marks = [(len(opening), "system")] if system and not history else []
            turn = model.tokenizer.encode(render_chat([{"role": "user", "content": line}], enable_thinking=think))
            state = _stream_reply(model, cache, opening + turn, sampling, max_new_tokens, marks)
            cache.add(state, "turn")  # the next turn starts here: nothing of this one is recomputed
            if cache_file is not None:
                cache.save(cache_file)
            history = list(state.tokens)
            pending = "<|im_end|>\n"  # close the reply: its stop token was sampled, not folded in
    except EdgekitError as err:
        _fail(err)


cache_app = typer.Typer(help="Prompt caches: precomputed prefixes saved to a file.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("save")
def cache_save(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Cache file to write (.npz)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt to precompute."),
    text_file: Optional[Path] = typer.Option(None, "--file", help="A document to precompute as the first "
                                             "user turn's opening; it is closed with a blank line, after "
                                             "which the question follows at run time."),
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
) -> None:
    """Precompute a prefix (system prompt, a document) once and save it, e.g. to ship with an app."""
    from edgekit.tokenizer import render_chat

    try:
        if not system and not text_file:
            raise EdgekitError("nothing to precompute", "pass --system TEXT and/or --file DOC")
        model = _load(bundle, threads, max_context)
        text = render_chat([{"role": "system", "content": system}], add_generation_prompt=False) if system else ""
        if text_file:
            # The blank line is a token boundary: the question that follows cannot merge into the
            # document's last token, so the prompt's tokens start with exactly the cached ones.
            text += "<|im_start|>user\n" + text_file.read_text() + "\n\n"
        cache = _open_cache(model, out)
        ids = model.tokenizer.encode(text)
        start = time.perf_counter()
        cache.prefill(ids, marks=[(len(ids), "system")])
        cache.save(out)
    except EdgekitError as err:
        _fail(err)
    typer.echo(f"saved {out}: {len(ids)} tokens precomputed in {time.perf_counter() - start:.1f} s, "
               f"{len(cache)} checkpoints, {cache.nbytes / 2**20:.1f} MiB")


@cache_app.command("info")
def cache_info(
    bundle: Path = typer.Argument(..., help="Bundle folder the cache belongs to."),
    cache_file: Path = typer.Argument(..., help="Cache file."),
) -> None:
    """Load a cache (checksum, bundle match) and list its checkpoints."""
    try:
        model = _load(bundle, 1, None)
        cache = _open_cache(model, cache_file) if cache_file.exists() else None
        if cache is None:
            raise EdgekitError(f"no prompt cache at {cache_file}", "create one with `edgekit cache save`")
    except EdgekitError as err:
        _fail(err)
    typer.echo(f"{cache_file}: bundle {model.bundle.digest}, {len(cache)} checkpoints, {cache.nbytes / 2**20:.1f} MiB")
    for cp in cache.checkpoints:
        typer.echo(f"  {cp.kind:8s} {len(cp.tokens):6d} tokens  {cp.nbytes / 2**20:7.1f} MiB")


@app.command()
def info(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Show what a bundle holds: model, format, quantization, sizes, state and context budget."""
    from edgekit.bundle import Bundle

    try:
        b = Bundle.open(bundle)
    except EdgekitError as err:
        _fail(err)
    m, cfg = b.manifest, b.text_config
    shapes = cfg.state_shapes()
    fixed = 4 * len(cfg.deltanet_layers) * (math.prod(shapes["conv"]) + math.prod(shapes["recurrent"]))
    per_token = 4 * 2 * len(cfg.attention_layers) * math.prod(shapes["kv_row"])
    typer.echo(f"bundle      {b.path}  (format {m['format_version']}, {m['created_by']}, id {b.digest})")
    typer.echo(f"model       {m['source']['model']}  hidden {cfg.hidden_size}, {cfg.num_layers} layers "
               f"({len(cfg.deltanet_layers)} DeltaNet + {len(cfg.attention_layers)} attention), vocab {cfg.vocab_size}")
    decoder = m["graphs"]["decoder"]
    how = (f"DeltaNet ops: {decoder['deltanet']}" if m["backend"] == "onnx"
           else f"{decoder['delegate']} delegate, needs ops {', '.join(m.get('required_ops', []))}")
    typer.echo(f"backend     {m['backend']}, target {m['target']}, {how}")
    typer.echo(f"weights     {m['quantization']['weights']}"
               + (f", block {m['quantization']['block_size']}" if "block_size" in m["quantization"] else ""))
    if "vision" in m["graphs"]:
        v = m["graphs"]["vision"]
        typer.echo(f"vision      {v['weights']} weights, patch {v['patch_size']} x {v['temporal_patch_size']} frames, "
                   f"one token per {v['patch_size'] * v['merge_size']}x{v['patch_size'] * v['merge_size']} pixels"
                   + (f", frames fixed at {v['frame_size'][0]}x{v['frame_size'][1]}" if "frame_size" in v else ""))
    typer.echo(f"state       {fixed / 2**20:.2f} MiB fixed (DeltaNet) + {per_token / 1024:.1f} KiB per token (KV)")
    typer.echo(f"context     {m['runtime']['max_context']} tokens, prefill chunk {m['runtime']['chunk_size']}")
    typer.echo(f"eos ids     {m['tokenizer']['eos_ids']}, chat template {m['tokenizer']['chat_template']}")
    for name, f in m["files"].items():
        typer.echo(f"file        {name:24s} {f['bytes'] / 2**20:9.1f} MiB  sha256 {f['sha256'][:12]}")


@app.command()
def verify(bundle: Path = typer.Argument(..., help="Bundle folder.")) -> None:
    """Check checksums, the graph's opset, and that the graph's state matches the config."""
    from edgekit.bundle import Bundle

    try:
        b = Bundle.open(bundle)
        problems = b.verify_files()
        if not problems:
            from edgekit.runtimes import open_decoder

            # Loads the graph or program and checks its state I/O against the config. No thread count: resizing
            # ExecuTorch's process-wide pool would break programs the caller may have loaded in this process.
            decoder = open_decoder(b)
            if "vision" in b.manifest["graphs"]:
                from edgekit.runtimes.model import open_vision_encoder

                open_vision_encoder(b, decoder)  # loads vision.onnx (inputs checked) or the .pte method
    except EdgekitError as err:
        _fail(err)
    if problems:
        for p in problems:
            typer.echo(f"FAIL {p}", err=True)
        raise typer.Exit(1)
    graphs = " and ".join(b.manifest["graphs"])
    typer.echo(f"ok: {len(b.manifest['files'])} files match their checksums; graphs load ({graphs}); "
               "state matches the config")


@app.command()
def deploy(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    serial: Optional[str] = typer.Argument(None, help="The phone's serial (from `adb devices`), when several "
                                           "are connected."),
    adb: bool = typer.Option(False, "--adb", help="Push to an Android phone over adb: `--adb [SERIAL]`."),
    dest: Optional[str] = typer.Option(None, "--dest", help="Folder on the device (default: the demo app's "
                                       "storage, /sdcard/Android/data/org.edgekit.demo/files/bundles/NAME)."),
) -> None:
    """Copy a bundle onto a device and verify its checksums there."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from edgekit.deploy import deploy_adb

    try:
        if not adb:
            raise EdgekitError("no target device given", "pass --adb (or --adb SERIAL) to deploy to an Android phone")
        total = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()) if bundle.is_dir() else 0
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("adb push", total=total)
            done = deploy_adb(bundle, serial=serial, dest=dest,
                              on_file=lambda name, size: bar.advance(task, size))
    except EdgekitError as err:
        _fail(err)
    typer.echo(f"deployed {bundle} to {done.serial}:{done.path} ({done.files} files, "
               f"{done.bytes / 2**20:.1f} MiB, sha256 verified on the device)")


@app.command()
def profile(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    out: Path = typer.Option(Path("profile"), "-o", "--out", help="Folder for profile.json/.md/.html."),
    pp: int = typer.Option(128, "--pp", help="Prompt tokens per prefill measurement."),
    tg: int = typer.Option(64, "--tg", help="Decode steps per measurement."),
    depth: int = typer.Option(512, "--depth", help="Context present for the decode-at-depth measurement."),
    reps: int = typer.Option(3, "--reps", help="Repetitions after one warm-up."),
    threads: Optional[int] = _THREADS,
    energy: str = typer.Option("auto", "--energy", help="auto (RAPL, battery, Pi 5 PMIC) or none."),
    soak: Optional[str] = typer.Option(None, "--soak", help="Thermal soak after the protocol: 90s, 10m, 1h."),
    battery_wh: Optional[float] = typer.Option(None, "--battery-wh", help="Battery capacity (Wh): report the "
                                               "battery %/hour the model costs (needs an energy source)."),
    duty_cycle: float = typer.Option(0.1, "--duty-cycle", help="Fraction of the hour spent decoding."),
    device: Optional[str] = typer.Option(None, "--device", help="Run on a phone (adb:SERIAL) or a board "
                                         "(ssh:HOST): stage the bundle there and run its edgekit."),
    remote_python: str = typer.Option("python3", "--remote-python", help="With --device: the command that "
                                      "starts the device's Python (with edgekit installed)."),
    remote_dir: Optional[str] = typer.Option(None, "--remote-dir", help="With --device: the device folder for "
                                             "bundles and runs (default .cache/edgekit, /data/local/tmp/edgekit)."),
) -> None:
    """Measure a bundle on this device (or --device): speed, latency, memory, op breakdown, energy; report as
    JSON/MD/HTML."""
    from rich.console import Console

    from edgekit.profile_report import to_markdown, write_reports
    from edgekit.profiling import ProfileSettings, run_profile

    try:
        if min(pp, tg, reps) < 1 or depth < 0:
            raise EdgekitError("--pp, --tg and --reps must be at least 1 and --depth at least 0", "fix the option")
        if energy not in ("auto", "none"):
            raise EdgekitError(f"unknown energy source {energy!r}", "use --energy auto or --energy none")
        console = Console(stderr=True)
        if battery_wh is not None and battery_wh <= 0 or not 0 <= duty_cycle <= 1:
            raise EdgekitError("--battery-wh must be above 0 and --duty-cycle between 0 and 1", "fix the option")
        settings = ProfileSettings(pp=pp, tg=tg, depth=depth, reps=reps, threads=threads,
                                   soak_s=parse_duration(soak) if soak else 0.0, battery_wh=battery_wh,
                                   duty_cycle=duty_cycle)
        with console.status("profiling") as status:
            def progress(step: str) -> None:
                status.update(f"profiling: {step}")

            if device:
                from edgekit.remote import profile_remote

                result = profile_remote(device, bundle, settings, energy, remote_python, remote_dir, progress)
            else:
                result = run_profile(bundle, settings, energy="auto" if energy == "auto" else None, progress=progress)
        files = write_reports(result, out)
    except EdgekitError as err:
        _fail(err)
    typer.echo(to_markdown(result))
    typer.echo("wrote " + ", ".join(str(f) for f in files), err=True)


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m`` or ``1h``."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise EdgekitError(f"cannot read the duration {text!r}", "write it like 90s, 10m or 1h")
    return seconds


@app.command("profile-compare")
def profile_compare(a: Path = typer.Argument(..., help="profile.json"), b: Path = typer.Argument(..., help="profile.json")) -> None:
    """Compare two profile.json files (means, and the ratio b / a)."""
    import json

    from edgekit.profile_report import compare

    try:
        results = []
        for path in (a, b):
            try:
                results.append(json.loads(path.read_text()))
            except (OSError, ValueError) as err:
                raise EdgekitError(f"cannot read profile {path} ({type(err).__name__})",
                                   "pass profile.json files written by `edgekit profile`") from None
    except EdgekitError as err:
        _fail(err)
    typer.echo(compare(*results, names=(str(a), str(b))))


_VISION_NOTE = ("note: this bundle has no vision tower, so captions come from frame statistics (colour, "
                "brightness, motion) read by the text model; export with vision to caption what frames show")


@app.command()
def summarize(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    source: str = typer.Argument(..., help="Camera index (0), video file, rtsp:// or http:// stream, or image folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for timeline.jsonl/.json/.md and frames/."),
    fps: float = typer.Option(2.0, "--fps", help="At most this many frames per second (lower on slow devices)."),
    size: int = typer.Option(224, "--size", help="Frames are resized to about size x size pixels: 224 or 448."),
    segment: str = typer.Option("10s", "--segment", help="Input time per caption: 10s, 1m."),
    summary_every: Optional[str] = typer.Option(None, "--summary-every", help="Also summarize every 5m of input "
                                                "(a live camera); default: at the end."),
    live: bool = typer.Option(False, "--live", help="Print captions and summaries as they come."),
    append: bool = typer.Option(False, "--append", help="Continue the timeline already in --out (a new run)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the timeline already in --out."),
    reconnect: int = typer.Option(5, "--reconnect", help="Reconnect tries (exponential back-off from 1 s) "
                                  "when a camera or stream drops."),
    caption_tokens: int = typer.Option(32, "--caption-tokens", help="At most this many tokens per caption."),
    temperature: float = _T, top_k: int = _K, seed: Optional[int] = _S,
    threads: Optional[int] = _THREADS, max_context: Optional[int] = _CTX,
) -> None:
    """Caption a camera, video, stream or image folder segment by segment into a timeline, then summarize it.
    Exit status: 0 done (also for a truncated file), 3 the camera/stream was lost, 130 interrupted."""
    try:
        from edgekit.runtimes.captioner import FrameStatsCaptioner, VisionCaptioner
        from edgekit.runtimes.summarizer import Summarizer, SummarizerSettings
        from edgekit.runtimes.timeline import Timeline, clock
        from edgekit.runtimes.video import Backoff, open_source
    except ModuleNotFoundError as err:
        if err.name != "cv2":
            raise
        _fail(EdgekitError("edgekit summarize needs OpenCV", "pip install 'edgekit[video]'"))

    def show(record):
        if "caption" in record:
            typer.echo(f"[{clock(record['start'])}-{clock(record['end'])}] {record['caption']}")
        else:
            typer.echo(f"{'summary' if record['final'] else 'summary so far'} "
                       f"[{clock(record['start'])}-{clock(record['end'])}]: {record['text']}")

    try:
        if append and overwrite:
            raise EdgekitError("--append and --overwrite exclude each other", "pass one of them")
        settings = SummarizerSettings(fps=fps, size=size, segment_s=parse_duration(segment),
                                      summary_every_s=parse_duration(summary_every) if summary_every else None)
        settings.check()
        src = open_source(source, interval_s=1 / fps, backoff=Backoff(tries=reconnect))
        timeline = Timeline(out, mode="append" if append else "overwrite" if overwrite else "new")
        model = _load(bundle, threads, max_context)
        kind = VisionCaptioner if model.has_vision else FrameStatsCaptioner
        captioner = kind(model, caption_tokens=caption_tokens, sampling=_sampling(temperature, top_k, 1.0, 1.0, seed))
        if not model.has_vision:
            typer.echo(_VISION_NOTE, err=True)
        result = Summarizer(captioner, timeline, settings, on_caption=show if live else None,
                            on_summary=show if live else None).run(src)
    except EdgekitError as err:
        _fail(err)
    if not live and result.summary is not None:
        typer.echo(result.summary)
    typer.echo(f"wrote {out / 'timeline.md'} ({result.segments} segments, {clock(result.t)} of input)", err=True)
    if result.error is not None:
        typer.echo(f"error: {result.error}", err=True)
        raise typer.Exit(3)
    if result.reason == "truncated":
        typer.echo(f"warning: {result.message}", err=True)
    if result.reason == "interrupted":
        typer.echo(f"interrupted: {result.message}", err=True)
        raise typer.Exit(130)


def main() -> None:
    app()
