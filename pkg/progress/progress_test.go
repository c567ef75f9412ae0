package progress

import "testing"

func TestTeeAndNil(t *testing.T) {
	var got []string
	var nilFunc Func
	nilFunc.Report(Event{}) // a nil Func is a no-op
	f := Tee(func(e Event) { got = append(got, "a:"+e.Item) }, nil, func(e Event) { got = append(got, "b:"+e.Item) })
	f.Report(Event{Task: "download", Item: "m"})
	if len(got) != 2 || got[0] != "a:m" || got[1] != "b:m" {
		t.Fatalf("got %v", got)
	}
}
