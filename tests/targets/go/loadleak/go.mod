module example.com/loadleak

go 1.19
