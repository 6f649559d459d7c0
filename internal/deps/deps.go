// Package deps pins the module's dependencies while the packages that use
// them are being written. Delete it once every dependency has a real user.
package deps

import (
	_ "github.com/Shopify/toxiproxy/v2"
	_ "github.com/anishathalye/porcupine"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/redis/go-redis/v9"
	_ "golang.org/x/sync/singleflight"
	_ "modernc.org/sqlite"
	_ "pgregory.net/rapid"
)
