"""`bvc data list | fetch | verify`: the datasets, where they lie, their checksums."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bovw_vs_convnet.cli.options import (
    SentenceHelpGroup,
    count_option,
    data_dir_option,
    json_option,
    protocol_options,
    split_options,
)


@click.group("data", cls=SentenceHelpGroup)
def data() -> None:
    """Datasets: list them, fetch them, verify their checksums."""


@data.command("list")
@data_dir_option
@json_option
def list_datasets(data_dir: Path | None, as_json: bool) -> None:
    """Datasets from the manifests, with where each is found (or "not found")."""
    from bovw_vs_convnet.data.datasets import where_found
    from bovw_vs_convnet.data.manifest import list_manifests

    rows: list[dict[str, Any]] = []
    for m in list_manifests():
        rows.append(
            {
                "name": m.name,
                "format": m.format,
                "classes": m.n_classes,
                "image_size": list(m.image_size),
                "channels": m.channels,
                "n_train": m.n_train,
                "n_test": m.n_test,
                "official_split": m.official_split,
                "found": where_found(m, data_dir),
                "description": m.description,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ("name", "classes", "size", "train", "test", "found")
    table = [header] + [
        (
            str(r["name"]),
            str(r["classes"]),
            "{}x{}x{}".format(*r["image_size"], r["channels"]),
            "" if r["n_train"] is None else str(r["n_train"]),
            str(r["n_test"] or "") if r["official_split"] else "held out",
            str(r["found"] or "not found"),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))


@data.command("fetch")
@click.argument("name")
@data_dir_option
def fetch(name: str, data_dir: Path | None) -> None:
    """Locate dataset NAME (or download it with torchvision), then verify its checksums.

    A glyph set (``glyphs``, ``glyphs-wild``) is rendered from the installed fonts instead.
    """
    from bovw_vs_convnet.data.datasets import fetch_dataset, is_folder_reference
    from bovw_vs_convnet.data.manifest import get_manifest

    if not is_folder_reference(name) and get_manifest(name).format == "glyphs":
        _fetch_glyphs(name, data_dir)
        return
    where, checks = fetch_dataset(name, data_dir)
    if checks:
        click.echo(f"{name}: {len(checks)} files verified in {where}")
    else:
        click.echo(f"{name}: {where}, no files to verify")


@data.command("verify")
@click.argument("name")
@data_dir_option
def verify(name: str, data_dir: Path | None) -> None:
    """Check every checksum of dataset NAME's files; the first mismatch fails (exit 2).

    For an image folder (a path), read every image: the first unreadable one fails.
    """
    from bovw_vs_convnet.data.datasets import (
        is_folder_reference,
        load_imagefolder,
        verify_dataset,
    )

    if is_folder_reference(name):
        ds = load_imagefolder(name.removeprefix("imagefolder:"), lazy=False)
        n = len(ds.train) + (0 if ds.test is None else len(ds.test))
        click.echo(f"{ds.name}: {n} images read, {ds.manifest.n_classes} classes (no checksums)")
        return
    from bovw_vs_convnet.data.manifest import get_manifest

    if get_manifest(name).format == "glyphs":
        _verify_glyphs(name, data_dir)
        return
    checks = verify_dataset(name, data_dir)
    if not checks:
        click.echo(f"{name}: built in, no files to verify")
        return
    for check in checks:
        click.echo(f"ok  {check.path}  ({', '.join(check.checks)})")
    click.echo(f"{name}: {len(checks)} files verified")


def _fetch_glyphs(name: str, data_dir: Path | None) -> None:
    """Render a glyph set from the installed fonts and say what it holds."""
    from bovw_vs_convnet.data.glyphs import build_glyphs
    from bovw_vs_convnet.data.manifest import get_manifest

    b = build_glyphs(get_manifest(name), data_dir, progress="auto")
    click.echo(
        f"{name}: {b.n_train + b.n_test} images of {b.n_faces} faces ({b.n_families} families "
        f"in {b.n_groups} design groups) rendered into {b.path} in {b.seconds:.0f} s"
    )
    click.echo(f"train {b.n_train}, test {b.n_test}; font set {b.font_set_sha256}")
    if not b.matches_manifest:
        click.echo(
            f"warning: these fonts differ from the manifest's font set {b.expected_sha256} "
            f"(`bvc data verify {name}` names them); ids and split fingerprints will differ "
            "from other machines'",
            err=True,
        )


def _verify_glyphs(name: str, data_dir: Path | None) -> None:
    """Name the fonts that differ from the manifest's font set; check the rendered files."""
    from bovw_vs_convnet.data.glyphs import verify_glyphs
    from bovw_vs_convnet.data.manifest import get_manifest
    from bovw_vs_convnet.errors import DataError

    check = verify_glyphs(get_manifest(name), data_dir)
    for line in check.missing:
        click.echo(f"missing  {line}")
    for line in check.extra:
        click.echo(f"extra    {line}")
    if not check.fonts_match:
        differ = len(check.missing) + len(check.extra)
        raise DataError(
            f"{name}: the fonts here (font set {check.font_set_sha256}) differ from the "
            f"manifest's ({check.expected_sha256 or 'none recorded'})"
            + (f": {differ} face(s), listed above" if differ else "")
        )
    click.echo(f"ok  fonts: font set {check.font_set_sha256}, as the manifest records")
    if check.rendered is None:
        raise DataError(f"{name}: not rendered; run `bvc data fetch {name}`")
    if not check.rendered_ok:
        raise DataError(
            f"{name}: the set in {check.rendered} was rendered from other fonts or settings, "
            f"or its images file changed; run `bvc data fetch {name}` again"
        )
    click.echo(f"ok  {check.rendered}  (images sha256, fonts and settings as its index says)")
    click.echo(f"{name}: verified")


@data.command("split")
@click.argument("name")
@click.option("--seed", type=int, default=0, show_default=True, help="Split seed (0 to 2**32 - 1).")
@click.option("--train-size", type=int, default=None, help="Class-balanced train subset size.")
@click.option(
    "--val-fraction", type=float, default=0.1, show_default=True, help="Validation share."
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Held-out test share (datasets without an official test part).",
)
@protocol_options(splits=False)
@count_option("--split-index", 0, "Which seeded resampling (split k of bvc run --splits).", low=0)
@data_dir_option
@json_option
def split(
    name: str,
    seed: int,
    train_size: int | None,
    val_fraction: float,
    test_fraction: float,
    train_per_class: int | None,
    test_per_class: int | None,
    short_classes: str | None,
    split_index: int,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Show the common split of NAME (a manifest name or an image folder): sizes and fingerprint."""
    from bovw_vs_convnet.config import check_seed
    from bovw_vs_convnet.data import load_dataset, make_split

    check_seed(seed, "--seed")
    s = make_split(
        load_dataset(name, data_dir),
        seed=seed,
        train_size=train_size,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_index=split_index,
        **split_options(train_per_class, test_per_class, short_classes),
    )
    n_val = 0 if s.val is None else len(s.val)
    summary = {
        **s.params,
        "n_train": len(s.train),
        "n_val": n_val,
        "n_test": len(s.test),
        "split_fingerprint": s.fingerprint,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{s.params['dataset']}: train {len(s.train)}, val {n_val}, test {len(s.test)}")
    click.echo(f"fingerprint {s.fingerprint}")
