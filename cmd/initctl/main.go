// Command initctl is Vigil's control client; everything it does lives in
// package vigil/cmd/initctl/cli so that the vigil binary can share it.
package main

import (
	"os"

	"vigil/cmd/initctl/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdout, os.Stderr))
}
