package memstore

// CheckNamespace and CheckKey apply the rules New and every call apply, so
// the layout tests range over exactly what the store accepts.
var CheckNamespace = checkNamespace

func CheckKey(key string) error {
	s := &Store[string]{opts: Options[string]{}.withDefaults()}
	return s.checkKey("get", key)
}
