"""The report's pictures made small enough to travel inside a Prefect markdown artifact as `data:` URLs.

Both Prefect UIs render a markdown image whose source is a `data:` URL, and neither renders a path or a
`file://` URL (README, "Run report"). An artifact is a row in the server's database: its pictures must stay
at a few hundred KB per run, whatever the number of subsets.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

BUDGET = 400_000  # characters of data: URLs per artifact
WIDEST = 1000  # px: about the width of a run's page
NARROWEST = 240  # px: below this a picture tells nothing; one that does not fit then is left out
JPEG_QUALITY = 80


def data_urls(pictures: dict[str, bytes], budget: int = BUDGET) -> dict[str, str]:
    """`{name: png}` -> `{name: data URL}` of each picture scaled to one width (the widest that keeps the total
    within `budget`), as JPEG or palette PNG, whichever is smaller at the first width tried. Pictures left out
    when even the narrowest width does not fit are missing from the answer, the later ones first."""
    images = {name: _flattened(png) for name, png in pictures.items()}
    width, kinds = WIDEST, {}
    while True:
        encoded = {name: _encoded(image, width, kinds.get(name)) for name, image in images.items()}
        kinds = {name: kind for name, (kind, _) in encoded.items()}
        urls = {
            name: f"data:image/{kind};base64,{base64.b64encode(data).decode()}"
            for name, (kind, data) in encoded.items()
        }
        total = sum(map(len, urls.values()))
        if total <= budget or width <= NARROWEST:
            break
        # bytes grow with the area: aim just under the budget in one step
        width = max(NARROWEST, min(int(width * 0.9), int(width * (budget / total) ** 0.5 * 0.95)))
    kept, total = {}, 0
    for name, url in urls.items():
        if total + len(url) <= budget:
            kept[name] = url
            total += len(url)
    return kept


def _flattened(png: bytes) -> Image.Image:
    """The picture on white: JPEG has no alpha channel."""
    with Image.open(io.BytesIO(png)) as image:
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return image.convert("RGB")


def _encoded(image: Image.Image, width: int, kind: str | None) -> tuple[str, bytes]:
    """The picture at `width` (never wider than it is) as `kind`, or as the smaller of both when None."""
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.LANCZOS)
    found = []
    if kind in (None, "jpeg"):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        found.append(("jpeg", out.getvalue()))
    if kind in (None, "png"):
        # charts are a few flat colours: a 64-colour palette keeps them sharp at a fraction of JPEG's size
        out = io.BytesIO()
        image.quantize(64, method=Image.Quantize.FASTOCTREE).save(out, "PNG")
        found.append(("png", out.getvalue()))
    return min(found, key=lambda pair: len(pair[1]))
