package jsonguard

// A Member is one member of a JSON object, as [Members] finds it.
type Member struct {
	// Key is the member's key, unescaped. It is only valid during the
	// call that receives it.
	Key []byte
	// RawKey is the key as it appears in the input, quotes included.
	RawKey []byte
	// Value is the raw JSON text of the member's value. It aliases the
	// input.
	Value []byte
}

// Members calls fn for each member of the JSON object obj, in order, until
// fn returns false. obj must have passed [Check] (alone or as part of a
// larger message): Members finds where each key and value begins and ends
// without validating them again, so on unchecked input it may return an
// error or report members a validating parser would refuse.
//
// It is how the gateway's hot path reads the few members it needs (a tool
// call's name and arguments, a result's content) and copies the rest as
// they are, without decoding them.
func Members(obj []byte, fn func(m Member) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) {
		return eof(i)
	}
	if obj[i] != '{' {
		return newError(ErrNotObject, i, "value is not an object")
	}
	it := members{data: obj, i: i + 1}
	var buf [64]byte
	for {
		m, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := it.skip(&m); err != nil {
			return err
		}
		raw := obj[m.keyOff:m.keyEnd:m.keyEnd]
		key := raw[1 : len(raw)-1]
		if m.keyEsc {
			k, good := appendUnescaped(buf[:0], key)
			if !good {
				return newError(ErrSyntax, m.keyOff, "invalid escape in key")
			}
			key = k
		}
		if !fn(Member{Key: key, RawKey: raw, Value: obj[m.val:m.end:m.end]}) {
			return nil
		}
	}
}

// Unquote returns the text of the JSON string value v (quotes included, as
// [Member.Value] gives it), unescaped, and false if v is not a string.
func Unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	s := v[1 : len(v)-1]
	for _, c := range s {
		if c == '\\' {
			b, ok := appendUnescaped(make([]byte, 0, len(s)), s)
			if !ok {
				return "", false
			}
			return string(b), true
		}
	}
	return string(s), true
}

// Lookup returns the raw value of obj's member key (obj checked as for
// [Members]), or nil when obj is not an object or has no such member.
func Lookup(obj []byte, key string) []byte {
	var v []byte
	_ = Members(obj, func(m Member) bool {
		if string(m.Key) == key {
			v = m.Value
		}
		return v == nil
	})
	return v
}

// Elements calls fn with the raw JSON text of each element of the array
// arr, in order, until fn returns false. Like [Members], arr must have
// passed [Check]: elements are found, not validated again.
func Elements(arr []byte, fn func(el []byte) bool) error {
	i := skipWS(arr, 0)
	if i >= len(arr) {
		return eof(i)
	}
	if arr[i] != '[' {
		return newError(ErrSyntax, i, "value is not an array")
	}
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		if i >= len(arr) {
			return eof(i)
		}
		end, _, ok := skipValue(arr, i)
		if !ok {
			return newError(ErrSyntax, i, "invalid array element")
		}
		if !fn(arr[i:end:end]) {
			return nil
		}
		i = skipWS(arr, end)
		if i >= len(arr) {
			return eof(i)
		}
		switch arr[i] {
		case ',':
			i = skipWS(arr, i+1)
		case ']':
			return nil
		default:
			return newError(ErrSyntax, i, "expected , or ] after an array element")
		}
	}
}
