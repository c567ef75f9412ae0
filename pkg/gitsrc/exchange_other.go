//go:build !linux

package gitsrc

import "errors"

// exchange is Linux-only; elsewhere replaceDir renames the old tree aside.
func exchange(a, b string) error {
	return errors.New("atomic exchange not supported on this system")
}
