"""``edgekit deploy``, ``edgekit profile`` and ``edgekit profile-compare``: bundles on devices."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.app import app, fail
from edgekit.cli.options import THREADS, parse_duration
from edgekit.errors import EdgekitError


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

    from edgekit.device.deploy import deploy_adb

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
        fail(err)
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
    threads: Optional[int] = THREADS,
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

    from edgekit.device.profile_report import to_markdown, write_reports
    from edgekit.device.profiling import ProfileSettings, run_profile

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
                from edgekit.device.remote import profile_remote

                result = profile_remote(device, bundle, settings, energy, remote_python, remote_dir, progress)
            else:
                result = run_profile(bundle, settings, energy="auto" if energy == "auto" else None, progress=progress)
        files = write_reports(result, out)
    except EdgekitError as err:
        fail(err)
    typer.echo(to_markdown(result))
    typer.echo("wrote " + ", ".join(str(f) for f in files), err=True)


@app.command("profile-compare")
def profile_compare(a: Path = typer.Argument(..., help="profile.json"), b: Path = typer.Argument(..., help="profile.json")) -> None:
    """Compare two profile.json files (means, and the ratio b / a)."""
    import json

    from edgekit.device.profile_report import compare

    try:
        results = []
        for path in (a, b):
            try:
                results.append(json.loads(path.read_text()))
            except (OSError, ValueError) as err:
                raise EdgekitError(f"cannot read profile {path} ({type(err).__name__})",
                                   "pass profile.json files written by `edgekit profile`") from None
    except EdgekitError as err:
        fail(err)
    typer.echo(compare(*results, names=(str(a), str(b))))
