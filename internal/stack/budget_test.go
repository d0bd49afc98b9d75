package stack

import "testing"

func TestPlanFDs(t *testing.T) {
	defaults := FDWants{VIPListeners: 4096, VIPConns: 16384, HTTPConns: 8192, Blocking: 4096}
	for _, tc := range []struct {
		name  string
		limit uint64
		w     FDWants
		want  Budget
	}{
		{"room for the defaults", 1 << 20, defaults, Budget{
			Limit: 1 << 20, Reserve: 1 << 18, VIPListeners: 4096, VIPConns: 16384, HTTPConns: 8192,
			RegistrarConns: 1 << 17, Blocking: 4096}},
		{"20000: scaled to 15000", 20000, defaults, Budget{
			Limit: 20000, Reserve: 5000, VIPListeners: 483, VIPConns: 1935, HTTPConns: 967,
			RegistrarConns: 2500, Blocking: 1250}},
		{"1024: reserve 512", 1024, defaults, Budget{
			Limit: 1024, Reserve: 512, VIPListeners: 16, VIPConns: 66, HTTPConns: 33,
			RegistrarConns: 256, Blocking: 128}},
		{"explicit reserve", 10000, FDWants{Reserve: 9000, VIPListeners: 10, VIPConns: 100, HTTPConns: 100, Blocking: 10}, Budget{
			Limit: 10000, Reserve: 9000, VIPListeners: 10, VIPConns: 100, HTTPConns: 100,
			RegistrarConns: 4500, Blocking: 10}},
		{"reserve over the limit", 256, defaults, Budget{
			Limit: 256, Reserve: 256, VIPListeners: 1, VIPConns: 1, HTTPConns: 1,
			RegistrarConns: 128, Blocking: 64}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanFDs(tc.limit, tc.w)
			if got != tc.want {
				t.Errorf("PlanFDs(%d, %+v)\n got %+v\nwant %+v", tc.limit, tc.w, got, tc.want)
			}
			if used := uint64(got.VIPListeners) + vipConnFDs*uint64(got.VIPConns) + 2*uint64(got.HTTPConns); got.Reserve < tc.limit && used+got.Reserve > tc.limit {
				t.Errorf("proxies may use %d descriptors, more than the %d left after the reserve", used, tc.limit-got.Reserve)
			}
		})
	}
}
