package pid1

// Boot runs Vigil as PID 1. It never returns.
func Boot() {
	select {}
}
