module burstguard.local/loadgen

go 1.22
