"""Registration of pty-chi's iterative engines (`lsqml`, `epie`, `rpie`, `dm`): specs only, no
torch or pty-chi import. The options and their defaults are declared here, once; the engine
(`ptycho_ptychi.engines`) takes them from `engine_options`."""

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, Option

REFERENCE = (
    "pty-chi (AdvancedPhotonSource/pty-chi, 2.2.0); LSQML: Odstrcil, Menzel, Guizar-Sicairos, Opt. Express 26, "
    "3108 (2018); ePIE: Maiden, Rodenburg, Ultramicroscopy 109, 1256 (2009); rPIE: Maiden, Johnson, Li, "
    "Optica 4, 736 (2017); DM: Thibault et al., Ultramicroscopy 109, 338 (2009)"
)

#: name -> (summary, description, default iterations). Iterations: measured on the default data
#: (576 test patterns of 32 x 32) so that each engine takes well under a minute on 2 CPU cores
#: (plugin README).
ENGINES = {
    "lsqml": (
        "pty-chi LSQML: least-squares maximum-likelihood iterative solver (reference row)",
        "Least-squares maximum likelihood (Odstrcil 2018): minibatch updates of object and probe with "
        "step sizes solved in closed form, Gaussian or Poisson noise model.",
        50,
    ),
    "epie": (
        "pty-chi ePIE: extended ptychographic iterative engine (reference row)",
        "Extended PIE (Maiden 2009): object and probe updated pattern batch by batch, each update weighted "
        "by the other's conjugate over its maximum intensity.",
        50,
    ),
    "rpie": (
        "pty-chi rPIE: regularised ptychographic iterative engine (reference row)",
        "Regularised PIE (Maiden 2017): ePIE whose update denominator mixes the local intensity with its "
        "maximum by alpha.",
        50,
    ),
    "dm": (
        "pty-chi DM: difference map iterative solver (reference row)",
        "Difference map (Thibault 2009): all exit waves projected onto the measured magnitudes and onto "
        "one consistent object and probe every iteration; step sizes do not apply. On noisy data its error "
        "grows again after a few tens of iterations, hence fewer by default.",
        25,
    ),
}


def engine_options(engine: str) -> dict:
    """The declared options of `engine` (name -> Option, with its documented default)."""
    iterations = ENGINES[engine][2]
    options = {
        "iterations": Option(
            "int", iterations, "iterations (pty-chi epochs, each a pass over all patterns)", min=1, max=1_000_000
        ),
        "minibatch": Option(
            "int",
            64 if engine != "dm" else 256,
            "patterns per update (pty-chi batch_size; DM: chunk_length, which only bounds memory)",
            min=1,
            max=1_000_000,
        ),
        "refine_probe": Option(
            "bool",
            False,
            "refine the probe as well as the object (off: the data's probe is used as given, as by "
            "every learned generator)",
        ),
        "refine_positions": Option(
            "bool", False, "correct the scan positions (pty-chi's gradient position correction)"
        ),
        "position_step": Option("float", 0.3, "step size of the position correction", min=0.0),
    }
    if engine != "dm":
        # rPIE at step 1 diverged on small scans (measured); 0.5 also scored higher on the default data.
        step = 0.5 if engine == "rpie" else 1.0
        options["object_step"] = Option("float", step, "object step size (pty-chi object step_size)", min=0.0)
        options["probe_step"] = Option("float", step, "probe step size (pty-chi probe step_size)", min=0.0)
    if engine == "lsqml":
        options["noise_model"] = Option("str", "gaussian", "noise model", choices=("gaussian", "poisson"))
    if engine in ("epie", "rpie"):
        options["alpha"] = Option("float", 0.1 if engine == "rpie" else 1.0, "PIE alpha of object and probe", min=0.0)
    return options


@hookimpl
def ptycho_register_generators(register):
    for engine, (summary, description, _) in ENGINES.items():
        register(
            GeneratorSpec(
                name=engine,
                summary=summary,
                framework="torch",
                kind="iterative",
                requires=("torch", "ptychi", "torchvision"),
                factory=f"ptycho_ptychi.engines:build_{engine}",
                options=engine_options(engine),
                description=description + " Reconstructs the test data directly from diffraction, positions "
                "and probe; no training.",
                reference=REFERENCE,
            )
        )
