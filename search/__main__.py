from search.cli import console

console()
