"""DEF-STUDY — the studies' figures: one matplotlib figure saved as a PNG in the output directory."""

from __future__ import annotations

from pathlib import Path

__all__ = ["save_figure"]


def save_figure(plt, fig, out_dir, name: str) -> Path:
    """DEF-STUDY — lay out ``fig``, write it to ``out_dir/name`` (110 dpi), close it; the path written."""
    fig.tight_layout()
    path = Path(out_dir) / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
