"""Which published SIFs `prune --keep N` removes: data in, data out."""

from __future__ import annotations

from typing import List, Tuple


def plan_prune(manifest: dict, keep: int) -> Tuple[dict, List[str]]:
    """The manifest without history beyond the newest KEEP images per variant, and the SIF paths
    to remove. The current image (what current.sif and the manifest point at) always counts as one.
    Only paths the (checked) manifest's history names are candidates, and never one that any
    entry still uses, as its current image or as kept history."""
    images, candidates = {}, []
    for key, entry in manifest["images"].items():
        current = entry["sif"]["path"]
        kept, history = 1, []
        for old in entry.get("history", []):
            if old["sif"]["path"] == current:
                continue
            if kept < keep:
                history.append(old)
                kept += 1
            else:
                candidates.append(old["sif"]["path"])
        images[key] = dict(entry, history=history)
    used = {e["sif"]["path"] for e in images.values()} | {h["sif"]["path"] for e in images.values() for h in e["history"]}
    removals = list(dict.fromkeys(path for path in candidates if path not in used))
    return dict(manifest, images=images), removals
