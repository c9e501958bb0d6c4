from ptycho_cli.main import main

main()
