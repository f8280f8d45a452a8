# The commands of benchmarks/uncertainty_plan.py's last pass, in order.
'#' select.json exists: 'rate 0.1'
dropcli compare none -c docs/studies/uncertainty/base.yaml --device cpu --seeds 30 --run-dir runs/study-uncertainty/plain -q
dropcli compare scratch -c docs/studies/uncertainty/base.yaml --device cpu --set model.dropout=0.1 --seeds 30 --run-dir runs/study-uncertainty/dropout -q
dropcli compare scratch -c docs/studies/uncertainty/base.yaml --device cpu --set model.dropout=0.1 --seeds 30 --run-dir runs/study-uncertainty/dropout -q
dropcli compare scratch -c docs/studies/uncertainty/base.yaml --device cpu -c docs/studies/uncertainty/ll-dropout.yaml --set 'model.dropout=[0,0.1]' --seeds 10 --run-dir runs/study-uncertainty/ll-dropout -q
dropcli compare scratch -c docs/studies/uncertainty/base.yaml --device cpu -c docs/studies/uncertainty/ll-dropout.yaml --set 'model.dropout=[0,0.1]' --seeds 10 --run-dir runs/study-uncertainty/ll-dropout -q
dropcli compare none -c docs/studies/uncertainty/base.yaml --device cpu --set 'data.classes=[0,1,2,3,4,5]' --seeds 10 --run-dir runs/study-uncertainty/open-plain -q
dropcli compare none -c docs/studies/uncertainty/base.yaml --device cpu --set 'data.classes=[0,1,2,3,4,5]' --seeds 10 --run-dir runs/study-uncertainty/open-plain -q
dropcli compare scratch -c docs/studies/uncertainty/base.yaml --device cpu --set 'data.classes=[0,1,2,3,4,5]' --set model.dropout=0.1 --seeds 10 --run-dir runs/study-uncertainty/open-dropout -q
dropcli compare scratch -c docs/studies/uncertainty/base.yaml --device cpu --set 'data.classes=[0,1,2,3,4,5]' --set model.dropout=0.1 --seeds 10 --run-dir runs/study-uncertainty/open-dropout -q
dropcli evaluate runs/study-uncertainty/ll-dropout --bootstrap 1000 --mc-sweep 1,10,50 --ensemble-sizes 5 --temperature --shift rotate=0,15,30,60,90,180 --shift translate=2,4,8 --shift noise=0.1,0.3,0.5 --shift blur=0.5,1,2 --shift contrast=0.5,0.75,0.9 --shift elastic=1,2,3 --shift speckle=0.5,1,2 --json -o docs/figures/uncertainty-r2-ll-dropout.png
dropcli evaluate runs/study-uncertainty/plain --bootstrap 1000 --ensemble-sizes 2,3,5,10 --temperature --shift rotate=0,15,30,60,90,180 --shift translate=2,4,8 --shift noise=0.1,0.3,0.5 --shift blur=0.5,1,2 --shift contrast=0.5,0.75,0.9 --shift elastic=1,2,3 --shift speckle=0.5,1,2 --ood noise --ood constant --ood inverted --json -o docs/figures/uncertainty-r2-plain.png
