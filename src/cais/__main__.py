from cais._entry import main

main()
