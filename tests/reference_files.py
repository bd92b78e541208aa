"""The files ../shared/reference provides (real dSprites samples, the public disentangling-vae
checkpoint); tests that need them skip when they are absent. ELBITS_SHARED overrides the folder."""

import os
from pathlib import Path

SHARED = Path(os.environ.get("ELBITS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REAL_PNG = SHARED / "reference" / "dsprites" / "real_samples_10x10.png"
VAE_DIR = SHARED / "reference" / "disentangling-vae" / "VAE_dsprites"
VAE_MODEL = VAE_DIR / "model.pt"
