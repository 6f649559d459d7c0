package fault

import (
	"database/sql/driver"
	"path/filepath"
	"testing"

	"github.com/memstore/memstore/memtest"
)

// The wrapper has a SessionResetter and a Validator exactly when the
// driver's connection does: database/sql decides by their presence whether
// a transaction whose context ends keeps its connection.
func TestWrapConnKeepsInterfaces(t *testing.T) {
	t.Parallel()
	connectors := map[string]func() (driver.Connector, error){
		"sqlite": func() (driver.Connector, error) {
			return SQLiteConnector(memtest.SQLiteDSN(filepath.Join(t.TempDir(), "x.db")))
		},
		"postgres": func() (driver.Connector, error) { return PostgresConnector(memtest.Postgres(t).DSN()) },
	}
	for name, open := range connectors {
		base, err := open()
		if err != nil {
			t.Fatal(err)
		}
		ci, err := base.Connect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer ci.Close()
		sf := NewSQLFaults(base)
		defer sf.Close()
		wrapped := wrapConn(sf, ci)
		_, baseR := ci.(driver.SessionResetter)
		_, baseV := ci.(driver.Validator)
		_, wrapR := wrapped.(driver.SessionResetter)
		_, wrapV := wrapped.(driver.Validator)
		if baseR != wrapR || baseV != wrapV {
			t.Errorf("%s: driver has SessionResetter %v, Validator %v; wrapper %v, %v", name, baseR, baseV, wrapR, wrapV)
		}
		if u, ok := wrapped.(interface{ Unwrap() driver.Conn }); !ok || u.Unwrap() != ci {
			t.Errorf("%s: wrapper does not unwrap to the driver's connection", name)
		}
	}
}
