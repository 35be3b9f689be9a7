//go:build darwin || freebsd

package plugins

const mapNoReserve = 0
