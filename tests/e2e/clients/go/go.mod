module tokentap.test/goclient

go 1.19
