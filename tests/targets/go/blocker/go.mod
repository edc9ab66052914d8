module example.com/blocker

go 1.19
