"""`bvc models`: the registered ConvNets with their trainable parameter counts."""

from __future__ import annotations

import json

import click

from bovw_vs_convnet.cli.options import count_option, json_option


def model_table(num_classes: int, channels: int) -> list[dict[str, object]]:
    """One row per registered model (ablations included), built on the meta device (no memory)."""
    import torch

    from bovw_vs_convnet.convnet.models import (
        count_parameters,
        create_model,
        get_model_spec,
        list_models,
    )

    rows: list[dict[str, object]] = []
    for name in list_models():
        spec = get_model_spec(name)
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, in_channels=channels)
        rows.append(
            {
                "model": name,
                "param_count": count_parameters(model),
                "img_size": spec.input_size,
                "in_channels": spec.fixed_channels or channels,
                "num_classes": num_classes,
                "description": spec.description,
            }
        )
    return [*rows, dbn_row(num_classes, channels)]


def dbn_row(num_classes: int, channels: int) -> dict[str, object]:
    """The ``dbn`` pipeline's network on 28×28 images (its sizes scale with the input)."""
    from bovw_vs_convnet.dbn.config import hidden_sizes
    from bovw_vs_convnet.dbn.model import count_parameters

    visible = 28 * 28 * channels
    hidden = hidden_sizes(visible)
    return {
        "model": "dbn",
        "param_count": count_parameters(visible, hidden, num_classes),
        "img_size": 28,
        "in_channels": channels,
        "num_classes": num_classes,
        "description": f"Hinton et al. 2006 deep belief net, {visible}-"
        + "-".join(map(str, hidden))
        + " (bvc run dbn; sizes scale with the input)",
    }


@click.command("models")
@count_option("--num-classes", 10, "Number of output classes the models are built for.")
@count_option("--channels", 1, "Image channels (1 grayscale, 3 RGB); RGB-only models replicate.")
@json_option
def models(num_classes: int, channels: int, as_json: bool) -> None:
    """List the registered ConvNets (and the dbn pipeline's net) with their parameter counts."""
    rows = model_table(num_classes, channels)
    if as_json:
        click.echo(json.dumps(rows))
        return
    width = max(len(str(r["model"])) for r in rows)
    click.echo(f"{'model':<{width}}  {'params':>11}  {'input':>7}  description")
    for r in rows:
        size = f"{r['in_channels']}x{r['img_size']}"
        click.echo(f"{r['model']:<{width}}  {r['param_count']:>11,}  {size:>7}  {r['description']}")
