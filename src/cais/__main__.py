from cais.cli import main

main()
