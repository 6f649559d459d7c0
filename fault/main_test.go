package fault_test

import (
	"os"
	"testing"

	"github.com/memstore/memstore/memtest"
)

func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }
