"""The `ptycho` command-line interface (click). Thin: parse, call ptycho_core, print."""
