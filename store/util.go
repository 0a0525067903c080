package store

import (
	"reflect"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func optsLimit(n int64) options.Lister[options.CountOptions] {
	return options.Count().SetLimit(n)
}

func strs[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = string(v)
	}
	return out
}

func typed[T ~string](in []string) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = T(v)
	}
	return out
}

// trimPage cuts the slice *out (decoded with one extra element) to first elements and reports
// whether it had more.
func trimPage(out any, first int) bool {
	v := reflect.ValueOf(out).Elem()
	if v.Len() > first {
		v.Set(v.Slice(0, first))
		return true
	}
	return false
}
