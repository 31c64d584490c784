"""The typer applications the command modules attach to."""

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Predictable scaling, evaluation and post-training of language models.")
align_app = typer.Typer(no_args_is_help=True, help="Post-training: SFT, reward models, RBRM, RLAIF, RL, DPO, evals.")
app.add_typer(align_app, name="align")
redteam_app = typer.Typer(no_args_is_help=True, help="Adversarial testing: attacks, judges measured against humans, "
                                                    "attacks on the judge.")
app.add_typer(redteam_app, name="redteam")
