//go:build !linux

package models

import (
	"errors"
	"os"
)

func startWriteback(*os.File, int64, int64) {}

func localDisk(*os.File) bool { return false }

func setDirectIO(*os.File, bool) bool { return false }

func diskFree(string) (int64, error) { return 0, errors.ErrUnsupported }
