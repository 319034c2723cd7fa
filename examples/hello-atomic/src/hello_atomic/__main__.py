from hello_atomic import main

main()
