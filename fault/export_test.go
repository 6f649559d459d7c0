package fault

// ToxicNames lists the toxics in place on p.
func ToxicNames(p *Proxy) []string { return p.toxicNames() }

// Enabled reports whether p accepts connections.
func Enabled(p *Proxy) bool { return p.enabled() }
