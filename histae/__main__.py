from histae.app import main

main()
